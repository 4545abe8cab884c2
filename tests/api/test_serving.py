"""Connection limits of `faceattrs serve` (faceattrs.api.serving), on both HTTP parsers, over real sockets.

A tiny ASGI app runs under uvicorn in a thread on a free loopback port; no model is loaded.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from faceattrs.api.server import ApiSettings
from faceattrs.api.serving import uvicorn_config
from tests.servers import free_port


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@contextlib.contextmanager
def server(http: str, **limits) -> Iterator[int]:
    import uvicorn

    port = free_port()
    settings = ApiSettings(**({"header_timeout_s": 0.5, "timeout_keep_alive": 1} | limits))
    instance = uvicorn.Server(uvicorn_config(hello, settings, port=port, http=http, loop="asyncio", log_level="error"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    for _ in range(200):
        if instance.started:
            break
        time.sleep(0.02)
    try:
        yield port
    finally:
        instance.should_exit = True
        thread.join(10)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(5)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 5 s)."""
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


PARSERS = ["h11", "httptools"]


@pytest.mark.parametrize("http", PARSERS)
def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(http):
    with server(http) as port, connect(port) as sock:
        started = time.perf_counter()
        reply = read_all(sock)
        assert reply.startswith(b"HTTP/1.1 408") and time.perf_counter() - started < 3


@pytest.mark.parametrize("http", PARSERS)
def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_deadline(http):
    with server(http) as port, connect(port) as sock:
        started = time.perf_counter()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        with contextlib.suppress(OSError):
            for _ in range(40):  # each byte well within the keep-alive time, the whole far past the deadline
                sock.sendall(b"X")
                time.sleep(0.1)
        reply = read_all(sock)
        assert b"408" in reply.split(b"\r\n", 1)[0] and time.perf_counter() - started < 4.5


@pytest.mark.parametrize("http", PARSERS)
def test_oversized_headers_are_refused(http):
    with server(http, max_header_bytes=8 * 1024) as port, connect(port) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 40_000 + b"\r\n")
        status = read_all(sock).split(b"\r\n", 1)[0]
        assert status.startswith(b"HTTP/1.1 4") and status[9:12] in (b"431", b"400"), status  # h11's own: 400


@pytest.mark.parametrize("http", PARSERS)
def test_requests_in_time_are_answered_and_kept_alive(http):
    with server(http) as port, connect(port) as sock:
        for _ in range(2):  # two requests on one connection, each within its own deadline
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while not reply.endswith(b"ok"):  # the head and the body may come in two writes
                reply += sock.recv(65536)
            assert reply.startswith(b"HTTP/1.1 200")
            time.sleep(0.3)
        started = time.perf_counter()
        assert read_all(sock) == b""  # then idle: closed by the keep-alive timeout (1 s), with nothing sent
        assert time.perf_counter() - started < 3


def test_connections_past_the_limit_get_503():
    with server("httptools", limit_concurrency=2, header_timeout_s=5) as port:
        idle = [connect(port) for _ in range(2)]
        time.sleep(0.1)
        with connect(port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 503")
        for s in idle:
            s.close()


def test_the_server_gives_large_freed_blocks_back_to_the_system():
    import platform

    from faceattrs.api.serving import return_freed_memory

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert return_freed_memory() is True
