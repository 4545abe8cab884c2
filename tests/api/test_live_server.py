"""The API served by `faceattrs serve` on loopback: schemathesis against the live OpenAPI schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import running


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FACEATTRS_API_HEADER_TIMEOUT_S", "2")  # short, for the test of idle connections
        with running("serve", "/healthz", model_dir, log) as url:
            yield url, log


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


def connect(url: str):
    import socket

    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.settimeout(10)
    return sock


def test_an_aborted_upload_is_one_log_line_without_a_traceback(server):
    import time

    url, log = server
    before = Path(log).read_text()
    with connect(url) as sock:
        head = b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000\r\n\r\n"
        sock.sendall(head + b"\xff" * 20_000)
        time.sleep(0.3)
    for _ in range(50):
        new = Path(log).read_text()[len(before) :]
        if "went away" in new:
            break
        time.sleep(0.1)
    assert "went away during its upload" in new and "Traceback" not in new and "ClientDisconnect" not in new
    assert len([line for line in new.splitlines() if "went away" in line]) == 1


def test_an_idle_connection_is_closed_by_the_server(server):
    import time

    url, _ = server
    with connect(url) as sock:
        started = time.perf_counter()
        reply = sock.recv(65536)  # nothing sent: the header timeout (2 s here) answers 408 and closes
        assert reply.startswith(b"HTTP/1.1 408") and time.perf_counter() - started < 8
