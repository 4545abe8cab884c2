"""Running the API under uvicorn with connection limits: what ``faceattrs serve`` starts.

uvicorn by itself caps neither connections nor the time or size of a request's headers, and an
open connection that sends nothing is kept forever. :func:`uvicorn_config` sets, from
:class:`~faceattrs.api.server.ApiSettings`:

* ``limit_concurrency``: connections and requests at once; past it uvicorn answers 503 at once;
* ``timeout_keep_alive``: an idle keep-alive connection is closed after this many seconds;
* ``header_timeout_s``: a connection whose request headers are not complete this long after it
  opened (or, on a keep-alive connection, after their first byte) is answered 408 and closed
  (slowloris);
* ``max_header_bytes``: request line and headers past this size are answered 431 and closed (h11
  has this limit built in; httptools has none, so both get it here).

Bodies are the application's concern (:mod:`faceattrs.api.server`: size, time and memory). These
limits keep one machine's worth of clients in check; exposed beyond loopback, the API belongs behind
a reverse proxy (TLS, per-client rate limits, buffered uploads), as the README says.

>>> from faceattrs.api.server import ApiSettings
>>> protocol_class("h11", ApiSettings()).__name__
'LimitedH11Protocol'
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

from faceattrs.api.server import ApiSettings


class _HeaderLimits:
    """Mixed into a uvicorn HTTP protocol: a deadline and a size cap for each request's headers.

    Uses what both of uvicorn's protocols (h11, httptools) have: ``cycle`` (the request whose headers
    are complete, ``None`` before the first), ``loop``, ``transport`` and ``on_response_complete``.
    """

    header_timeout_s: float = 10.0
    max_header_bytes: int = 32 * 1024

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        waiting = before is None or before.response_complete  # no request in progress: these bytes start a head
        super().data_received(data)  # type: ignore[misc]
        if not waiting:
            return
        if self.cycle is before:  # the head is still incomplete
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, "Request Header Fields Too Large")
            elif self._header_timer is None:
                self._await_headers()  # the first bytes of a keep-alive connection's next request: its deadline
        else:
            self._header_bytes = 0
            self._stop_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        # an idle keep-alive connection is closed by uvicorn's keep-alive timeout; the next head's deadline starts
        # with its first byte
        self._header_bytes = 0
        self._stop_timer()

    def _await_headers(self) -> None:
        self._stop_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow, self.cycle)

    def _stop_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self, cycle_then: Any) -> None:
        self._header_timer = None
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and self.cycle is cycle_then:  # no request's head was completed since the deadline was set
            self._refuse(408, "Request Timeout")

    def _refuse(self, status: int, reason: str) -> None:
        if self.transport.is_closing():
            return
        body = f"{status} {reason}: {'too slow' if status == 408 else 'too large'}\n".encode()
        head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {len(body)}\r\n"
        self.transport.write(head.encode() + b"connection: close\r\n\r\n" + body)
        self.transport.close()


def protocol_class(http: str, settings: ApiSettings) -> type[asyncio.Protocol]:
    """uvicorn's ``http`` protocol (``auto``, ``h11`` or ``httptools``) with :class:`_HeaderLimits` mixed in.

    ``auto`` is httptools when it is installed, as in uvicorn.
    """
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    if http == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    elif http == "h11":
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    else:
        raise ValueError(f"unknown HTTP protocol {http!r}: auto, h11 or httptools")
    limits = {"header_timeout_s": settings.header_timeout_s, "max_header_bytes": settings.max_header_bytes}
    return type(f"Limited{base.__name__}", (_HeaderLimits, base), limits)


def uvicorn_config(
    app: Any,
    settings: ApiSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    loop: str = "auto",
    http: str = "auto",
    access_log: bool = True,
    log_level: str = "info",
) -> Any:
    """The ``uvicorn.Config`` that runs ``app`` with the connection limits of ``settings``."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop=loop,
        http=protocol_class(http, settings),
        access_log=access_log,
        log_level=log_level,
        limit_concurrency=settings.limit_concurrency,
        timeout_keep_alive=settings.timeout_keep_alive,
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )


#: mallopt's M_MMAP_THRESHOLD (malloc.h) and the value set: blocks of 4 MiB and more are mapped, unmapped when freed
#: (1 MiB cost 2 ms per one-face request in page faults: a 512x512 photo's buffers are about 1 MiB)
_M_MMAP_THRESHOLD, MMAP_THRESHOLD = -3, 4 << 20


def return_freed_memory() -> bool:
    """Have glibc give large freed blocks back to the system at once; True if it accepted (glibc only).

    By default glibc raises its mmap threshold each time a large mapped block is freed (up to 32 MiB),
    after which request bodies and decoded photos of that size come from the heap, whose freed
    memory the process keeps: after a burst of 19 MiB uploads and 49-megapixel decodes the server
    stayed at its peak RSS (1,323 MB after against 1,334 MB at the peak and 562 MB before, in an
    early run of ``benchmarks/load_api.py``'s hostile mix; 565 MB after with a fixed 1 MiB threshold). A
    fixed threshold keeps them mapped, so the RSS falls back once the burst is over. (Training does
    the opposite, on purpose: ``faceattrs.training.memory``.)
    """
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS, Windows)
        return False
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1


def serve(app: Any, settings: ApiSettings, **options: Any) -> None:
    """Run ``app`` under uvicorn until it is stopped (``options``: those of :func:`uvicorn_config`)."""
    import uvicorn

    return_freed_memory()
    uvicorn.Server(uvicorn_config(app, settings, **options)).run()
