"""The API under slow, hostile or vanishing clients, driven through the ASGI interface directly.

Requests are sent by calling the application with our own ``receive``, so a test sees exactly how
much of a body the server read, and can stall or drop a client at any point.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from faceattrs.api.server import ApiSettings, InferencePool, create_app
from faceattrs.inference.records import ImageResult
from tests.conftest import IMAGES


class GatedAnalyzer:
    """The real model's metadata, but analysis waits until ``gate`` opens (an image that takes long to analyse)."""

    def __init__(self, real) -> None:
        self.model = real.model
        self.gate = threading.Event()
        self.started = threading.Event()

    def analyze_many(self, sources, aligned=False, keep_images=False):
        self.started.set()
        self.gate.wait(10)
        return [ImageResult("<bytes>", "no_face", error_code="no_face", error="no face found") for _ in sources]


class Client:
    """One request to an ASGI app: ``chunks`` are sent one per ``receive``; ``stall`` after them, or ``drop``."""

    def __init__(self, chunks: list[bytes], *, stall: bool = False, drop: bool = False) -> None:
        self.chunks, self.stall, self.drop = list(chunks), stall, drop
        self.reads = 0

    async def receive(self):
        if self.reads < len(self.chunks):
            self.reads += 1
            more = self.reads < len(self.chunks) or self.stall or self.drop
            return {"type": "http.request", "body": self.chunks[self.reads - 1], "more_body": more}
        if self.drop:
            return {"type": "http.disconnect"}
        await asyncio.sleep(3600)  # a client that stopped sending

    async def post(self, app, path: str = "/v1/analyze", content_type: str = "image/jpeg"):
        """``(status, headers, JSON body)`` of the response."""
        import json

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"content-type", content_type.encode())], "client": ("127.0.0.1", 9), "server": ("t", 80),
        }  # fmt: skip
        sent = []

        async def send(message):
            sent.append(message)

        await app(scope, self.receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, json.loads(body)


def photo() -> bytes:
    return (IMAGES / "astronaut.jpg").read_bytes()


async def until(event: threading.Event) -> None:
    for _ in range(500):
        if event.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the analysis never started")


def test_a_full_queue_is_refused_before_the_body_is_read(analyzer):
    slow = GatedAnalyzer(analyzer)
    app = create_app(ApiSettings(workers=1, queue_size=0), slow)

    async def scenario():
        first = asyncio.create_task(Client([photo()]).post(app))
        await until(slow.started)
        late = Client([b"x" * 1000] * 5)
        status, headers, body = await late.post(app)
        slow.gate.set()
        await first
        return status, headers, body, late.reads

    status, headers, body, reads = asyncio.run(scenario())
    assert status == 503 and body["error"]["code"] == "queue_full" and headers["retry-after"] == "1"
    assert reads == 0 and headers["connection"] == "close"  # not one byte of the body was taken in


def test_a_body_slower_than_the_timeout_gets_408_and_the_connection_closes(analyzer):
    app = create_app(ApiSettings(body_timeout_s=0.3), analyzer)
    started = time.perf_counter()
    status, headers, body = asyncio.run(asyncio.wait_for(Client([b"\xff\xd8"], stall=True).post(app), 10))
    assert status == 408 and body["error"]["code"] == "request_timeout" and headers["connection"] == "close"
    assert time.perf_counter() - started < 3


def test_uploads_held_at_once_are_capped_in_bytes(analyzer):
    slow = GatedAnalyzer(analyzer)
    settings = ApiSettings(workers=2, queue_size=2, max_request_bytes=300_000, max_buffered_bytes=400_000)
    app = create_app(settings, slow)
    big = photo() + b"\0" * (250_000 - len(photo()))

    async def scenario():
        first = asyncio.create_task(Client([big]).post(app))
        await until(slow.started)
        status, headers, body = await Client([big[:100_000], big[100_000:]]).post(app)  # 250 + 250 KB > 400 KB
        small = asyncio.create_task(Client([photo()]).post(app))  # still fits beside the first
        await asyncio.sleep(0.2)
        slow.gate.set()
        await first
        return status, headers, body, await small

    status, headers, body, small = asyncio.run(scenario())
    assert status == 503 and body["error"]["code"] == "busy" and headers["retry-after"] == "1"
    assert small[0] == 200


def test_a_client_that_goes_away_mid_upload_is_one_log_line(analyzer, caplog):
    app = create_app(ApiSettings(), analyzer)
    with caplog.at_level(logging.INFO):
        asyncio.run(Client([b"\xff\xd8\xff" + b"\0" * 5000], drop=True).post(app))  # no exception escapes the app
    lines = [r for r in caplog.records if r.name.startswith(("faceattrs", "uvicorn", "starlette", "fastapi"))]
    assert len(lines) == 1 and "went away during its upload" in lines[0].getMessage()
    assert lines[0].exc_info is None  # no traceback


def test_a_timed_out_request_keeps_its_slot_until_the_work_ends():
    pool = InferencePool(workers=1, queue_size=0)
    done = threading.Event()

    def work():
        time.sleep(0.6)
        done.set()

    async def scenario():
        with pytest.raises(Exception) as timed_out:
            await pool.run(work, timeout=0.05)  # answered 504 at once, the thread still works
        assert timed_out.value.status == 504 and not done.is_set()
        with pytest.raises(Exception) as refused:
            await pool.run(time.sleep, 0, timeout=5)  # its slot is still taken: 503, not a second thread
        assert refused.value.status == 503 and pool.full
        for _ in range(200):
            if not pool.full:
                break
            await asyncio.sleep(0.01)
        assert done.is_set() and pool.admitted == 0  # given back when the work ended
        await pool.run(time.sleep, 0, timeout=5)

    asyncio.run(scenario())


def test_the_504_comes_at_the_timeout_however_long_the_work_takes():
    pool = InferencePool(workers=1, queue_size=0)
    started = time.perf_counter()
    with pytest.raises(Exception) as exc:
        asyncio.run(pool.run(time.sleep, 1.0, timeout=0.1))
    assert exc.value.status == 504 and time.perf_counter() - started < 0.8
