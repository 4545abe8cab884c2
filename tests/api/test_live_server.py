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
