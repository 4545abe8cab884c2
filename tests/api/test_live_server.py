"""The API served by `faceattrs serve` on loopback: schemathesis against the live OpenAPI schema."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "FACEATTRS_MODEL_DIR": str(model_dir)}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "faceattrs.cli", "serve", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the server did not start:\n" + log.read_text())
        yield url, log
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_server_binds_loopback_by_default(server):
    url, log = server
    assert url.startswith("http://127.0.0.1:")
    assert "127.0.0.1" in Path(log).read_text()


def test_schemathesis_finds_no_server_errors_or_schema_violations(server):
    url, log = server
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    checks = "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance"
    result = subprocess.run(
        [cli, "run", f"{url}/openapi.json", "--checks", checks, "--max-examples", "25", "--seed", "1",
         "--request-timeout", "30", "--no-color"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    text = Path(log).read_text()
    assert "Traceback" not in text
