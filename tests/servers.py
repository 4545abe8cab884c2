"""Start a `faceattrs` server command on a free loopback port for a test, and stop it afterwards."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(command: str, health_path: str, model_dir: Path, log: Path) -> Iterator[str]:
    """Run ``faceattrs COMMAND --port P`` until the block ends; yields its base URL."""
    port = free_port()
    env = {**os.environ, "FACEATTRS_MODEL_DIR": str(model_dir)}
    with log.open("w") as out:
        argv = [sys.executable, "-m", "faceattrs.cli", command, "--port", str(port)]
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url + health_path, timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.5)
        else:
            pytest.fail(f"`faceattrs {command}` did not start:\n{log.read_text()}")
        if proc.poll() is not None:
            pytest.fail(f"`faceattrs {command}` exited:\n{log.read_text()}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
