"""The HTTP API: FastAPI routes over the prediction core, safe under load and bad input.

* Limits (``ApiSettings``, env ``FACEATTRS_API_*``): request bytes, decoded
  pixels, images per batch, per-request timeout, inference workers and queue.
* Content is sniffed by decoding, never trusted from a name or a header.
* Every error is ``{"error": {"code", "message"}}`` with a 4xx/5xx status; no
  stack trace leaves the server.
* Images stay in memory: bodies are read into bytes (multipart parts are kept
  in RAM, never spooled to a temporary file) and nothing about them is logged.
* Inference runs in a bounded thread pool off the event loop; when workers
  and queue are full the answer is 503 with ``Retry-After``, given before the
  body is read. A slot stays taken until its work has truly ended, also when
  the request was answered 504 before that.
* Bodies must arrive within ``body_timeout_s`` (else 408), and all requests
  together hold at most ``max_buffered_bytes`` of bodies (else 503), so slow or
  many uploads cannot grow the memory without bound. The connection limits
  (count, header time and size, idle keep-alive) are set where uvicorn starts
  (:mod:`faceattrs.api.serving`).
* ``/docs`` is Swagger UI served from the package's own files: nothing a page
  needs comes from the internet.

>>> app = create_app(ApiSettings())  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any

import fastapi_offline
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser
from starlette.requests import ClientDisconnect

from faceattrs.api import page
from faceattrs.api.schemas import (
    AnalyzeResponse,
    BatchResponse,
    ErrorResponse,
    FaceOut,
    Health,
    ImageOut,
    ModelInfo,
)
from faceattrs.inference.analyzer import Analyzer
from faceattrs.inference.records import ImageResult

log = logging.getLogger("faceattrs.api")


@dataclass(frozen=True)
class ApiSettings:
    """Server limits; every field can be set by ``FACEATTRS_API_<NAME>`` (e.g. ``FACEATTRS_API_WORKERS=2``)."""

    max_request_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_batch_images: int = 16
    timeout_s: float = 30.0
    workers: int = 2
    queue_size: int = 8
    max_faces: int = 50
    #: seconds a request's body may take to arrive (408 after): an upload slower than that holds memory and a
    #: connection for nothing. 20 MiB in 30 s is 5.6 Mbit/s; a proxy that buffers bodies delivers them at once
    body_timeout_s: float = 30.0
    #: bytes of request bodies all requests together may hold in memory (503 past it): 4 requests at the limit
    max_buffered_bytes: int = 80 * 1024 * 1024
    # the connection limits below are uvicorn's, applied by `faceattrs serve` (faceattrs.api.serving)
    #: connections and requests at once (uvicorn's limit_concurrency); past it, 503 at once
    limit_concurrency: int = 64
    #: seconds an idle keep-alive connection is kept (uvicorn's timeout_keep_alive)
    timeout_keep_alive: int = 5
    #: seconds from a connection's start (on a keep-alive one: from a request's first byte) to the end of its headers
    header_timeout_s: float = 10.0
    #: bytes of request line and headers accepted (431 past it)
    max_header_bytes: int = 32 * 1024

    @classmethod
    def from_env(cls, **overrides: Any) -> ApiSettings:
        """Defaults, overridden by ``FACEATTRS_API_<NAME>`` variables, overridden by ``overrides`` that are not None."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = os.environ.get(f"FACEATTRS_API_{f.name.upper()}")
            if raw is not None:
                values[f.name] = float(raw) if f.type == "float" else int(raw)
        return cls(**(values | {k: v for k, v in overrides.items() if v is not None}))


#: Swagger UI's files, from the fastapi-offline wheel, served under DOCS_ASSETS
SWAGGER_UI_FILES = Path(fastapi_offline.__file__).parent / "static"
DOCS_ASSETS = "/docs/assets"


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with HTTP ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


#: for errors answered before the whole body was read: the connection closes, so the rest is never read
CLOSE = {"Connection": "close"}
BUSY = CLOSE | {"Retry-After": "1"}

ERRORS = {
    400: {
        "model": ErrorResponse,
        "description": "not a usable image: not_an_image, unsupported_format, corrupt, empty, too_complex (a file "
        "built to be slow to decode), too_small (an aligned crop under 32 px), bad_multipart, missing_file, ...",
    },
    408: {"model": ErrorResponse, "description": "the body did not arrive within the body timeout"},
    413: {"model": ErrorResponse, "description": "request or image too large"},
    415: {"model": ErrorResponse, "description": "unsupported content type"},
    422: {"model": ErrorResponse, "description": "invalid parameters"},
    503: {"model": ErrorResponse, "description": "queue or upload memory full; retry after the Retry-After seconds"},
    504: {"model": ErrorResponse, "description": "analysis took longer than the per-request timeout"},
}


def _request_body(field: str, many: bool) -> dict[str, Any]:
    """OpenAPI request body: image file(s) in a multipart field (one image may also be the raw body)."""
    binary = {"type": "string", "format": "binary"}
    multipart = {"type": "object", "properties": {field: {"type": "array", "items": binary} if many else binary}}
    content: dict[str, Any] = {"multipart/form-data": {"schema": multipart | {"required": [field]}}}
    if not many:
        content |= {"application/octet-stream": {"schema": binary}, "image/*": {"schema": binary}}
    return {"requestBody": {"content": content, "required": True}}


class InferencePool:
    """A fixed number of inference threads and a bounded queue in front of them.

    A slot is taken when work is admitted and given back when that work ends, on its own thread: a
    request answered 504 leaves its work running (a thread cannot be stopped), and the slot stays
    taken until it is done, so timed-out work can never pile up past ``workers + queue_size``.
    """

    def __init__(self, workers: int, queue_size: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="faceattrs-infer")
        self.capacity = workers + queue_size
        self.admitted = 0
        self._lock = threading.Lock()  # slots are given back on the inference threads

    @property
    def full(self) -> bool:
        """Whether new work would be refused now."""
        return self.admitted >= self.capacity

    def _release(self, _: Future | None = None) -> None:
        with self._lock:
            self.admitted -= 1

    async def run(self, fn, *args, timeout: float):
        """``fn(*args)`` on an inference thread; 503 when threads and queue are full, 504 past ``timeout`` seconds."""
        with self._lock:
            if self.admitted >= self.capacity:
                raise ApiError(503, "queue_full", "the server is busy; retry shortly", {"Retry-After": "1"})
            self.admitted += 1
        try:
            work = self.executor.submit(fn, *args)
        except BaseException:
            self._release()
            raise
        work.add_done_callback(self._release)  # when the work truly ends, not when the caller stops waiting
        try:
            # shield: the 504 is answered at the timeout without waiting on (or trying to cancel) the work
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(work)), timeout)
        except TimeoutError:
            raise ApiError(504, "timeout", f"analysis took longer than {timeout:g} s") from None


class BodyBudget:
    """The bytes of request bodies that all requests together hold in memory, capped at ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0  # changed on the event loop only

    @contextlib.contextmanager
    def account(self) -> Iterator[Callable[[int], None]]:
        """A ``take(n)`` that counts ``n`` more bytes held by one request (503 past the limit); all given back after."""
        taken = 0

        def take(n: int) -> None:
            nonlocal taken
            if self.held + n > self.limit:
                raise ApiError(503, "busy", "the server is receiving too many uploads; retry shortly", BUSY)
            self.held += n
            taken += n

        try:
            yield take
        finally:
            self.held -= taken


async def read_body(
    request: Request, limit: int, timeout: float = 30.0, take: Callable[[int], None] | None = None
) -> bytes:
    """The request body, refusing more than ``limit`` bytes before reading them all, or a body slower than ``timeout``.

    ``take(n)`` is told of every ``n`` bytes read (a :class:`BodyBudget`'s). A client that goes away
    mid-upload is logged as one line, not a traceback.
    """
    too_large = ApiError(413, "request_too_large", f"the request is larger than {limit // (1024 * 1024)} MB", CLOSE)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                if take is not None:
                    take(len(chunk))
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, "request_timeout", f"the request body did not arrive within {timeout:g} s", CLOSE) from None
    except ClientDisconnect:
        log.warning("client went away during its upload, after %d bytes", size)  # one line; no traceback
        message = "the client closed the connection during the upload"
        raise ApiError(400, "client_disconnected", message, CLOSE) from None
    return b"".join(chunks)


async def images_from_request(
    request: Request, settings: ApiSettings, field: str, take: Callable[[int], None] | None = None
) -> list[tuple[str | None, bytes]]:
    """(filename, bytes) of the uploaded images: multipart ``field`` parts, or the raw body (``take``: read_body's)."""
    body = await read_body(request, settings.max_request_bytes, settings.body_timeout_s, take)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        # Parse from the bytes already in memory; parts never reach a temporary file.
        async def stream():
            yield body

        try:
            parser = MultiPartParser(
                request.headers, stream(), max_files=settings.max_batch_images + 1, max_part_size=len(body) + 1
            )
            form = await parser.parse()
        except Exception as exc:  # malformed multipart of any kind
            raise ApiError(400, "bad_multipart", f"the multipart body could not be parsed: {exc}") from None
        out = []
        for value in form.getlist(field):
            if isinstance(value, str):
                raise ApiError(400, "not_a_file", f"the form field '{field}' must be a file upload")
            out.append((value.filename, await value.read()))
            await value.close()
        if not out:
            raise ApiError(400, "missing_file", f"no file in the multipart form field '{field}'")
        return out
    if content_type.startswith(("application/json", "application/x-www-form-urlencoded", "text/")):
        raise ApiError(415, "unsupported_media_type", "send the image as multipart/form-data or as the raw body")
    if not body:
        raise ApiError(400, "empty", "the request has no image")
    return [(None, body)]


def create_app(settings: ApiSettings | None = None, analyzer: Analyzer | None = None) -> FastAPI:
    """The FastAPI application. ``analyzer`` defaults to one over the shipped model."""
    settings = settings or ApiSettings.from_env()
    # Uploads are already capped at max_request_bytes; keeping every part in RAM up to that size means
    # no image is ever written to a temporary file on disk.
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, settings.max_request_bytes + 1)
    threads = max(1, (os.cpu_count() or 1) // settings.workers)
    analyzer = analyzer or Analyzer(max_pixels=settings.max_pixels, max_faces=settings.max_faces, threads=threads)
    pool = InferencePool(settings.workers, settings.queue_size)
    budget = BodyBudget(max(settings.max_buffered_bytes, settings.max_request_bytes))
    meta = analyzer.model.metadata
    model_info = ModelInfo(name=meta["name"], version=str(meta["version"]), sha256=meta["sha256"])

    app = FastAPI(
        title="faceattrs API",
        version="1",
        description="Apparent age (with a 90% range), gender and ethnicity for every face in an image. "
        "Images are processed in memory and never stored. Trained on UTKFace: non-commercial research only; "
        "never use the output to make decisions about individuals.",
        docs_url=None,  # FastAPI's own /docs loads Swagger UI from a CDN: served from the package below instead
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.mount(DOCS_ASSETS, StaticFiles(directory=SWAGGER_UI_FILES), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title="faceattrs API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            # Swagger UI's default validator badge is an image from validator.swagger.io: off
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, "invalid_parameters", f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s", type(exc).__name__)  # never the request content
        return _error(500, "internal_error", "the server failed to process the request")

    def refuse_early() -> None:
        # a body is not worth receiving when no slot will be free to analyse it: 503 before reading it
        if pool.full:
            raise ApiError(503, "queue_full", "the server is busy; retry shortly", BUSY)

    def analyze_all(
        images: list[tuple[str | None, bytes]], aligned: bool, keep_images: bool = False
    ) -> list[ImageResult]:
        return list(analyzer.analyze_many([data for _, data in images], aligned=aligned, keep_images=keep_images))

    @app.post(
        "/v1/analyze",
        response_model=AnalyzeResponse,
        responses=ERRORS,
        summary="Analyse every face in one image",
        openapi_extra=_request_body("file", many=False),
    )
    async def analyze(
        request: Request,
        aligned: Annotated[bool, Query(description="the image is an aligned face crop; skip detection")] = False,
    ) -> AnalyzeResponse:
        start = time.perf_counter()
        refuse_early()
        with budget.account() as take:
            images = await images_from_request(request, settings, "file", take)
            if len(images) > 1:
                raise ApiError(400, "too_many_files", "send one file here; use /v1/analyze/batch for several")
            (result,) = await pool.run(analyze_all, images, aligned, timeout=settings.timeout_s)
        if result.status == "error":
            status = 413 if result.error_code == "too_large" else 400
            raise ApiError(status, result.error_code or "bad_image", result.error or "not a usable image")
        return AnalyzeResponse(
            status=result.status,
            faces=[FaceOut.of(f) for f in result.faces],
            model=model_info,
            timing_ms=round(1000 * (time.perf_counter() - start), 1),
        )

    @app.post(
        "/v1/analyze/batch",
        response_model=BatchResponse,
        responses=ERRORS,
        summary="Analyse several images; results in order, each with its own status",
        openapi_extra=_request_body("files", many=True),
    )
    async def analyze_batch(
        request: Request,
        aligned: Annotated[bool, Query(description="the images are aligned face crops")] = False,
    ) -> BatchResponse:
        start = time.perf_counter()
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ApiError(415, "unsupported_media_type", "send the images as multipart/form-data field 'files'")
        refuse_early()
        with budget.account() as take:
            images = await images_from_request(request, settings, "files", take)
            if len(images) > settings.max_batch_images:
                raise ApiError(413, "too_many_images", f"at most {settings.max_batch_images} images per batch")
            results = await pool.run(analyze_all, images, aligned, timeout=settings.timeout_s)
        out = []
        for i, ((name, _), result) in enumerate(zip(images, results, strict=True)):
            error = None
            if result.status == "error":
                error = {"code": result.error_code or "bad_image", "message": result.error or ""}
            faces = [FaceOut.of(f) for f in result.faces]
            out.append(ImageOut(index=i, filename=name, status=result.status, faces=faces, error=error))
        return BatchResponse(results=out, model=model_info, timing_ms=round(1000 * (time.perf_counter() - start), 1))

    @app.get("/v1/model", summary="Model metadata and measured metrics")
    async def model() -> dict[str, Any]:
        return {k: meta[k] for k in ("name", "version", "created", "sha256", "classes", "input", "calibration",
                                     "training", "metrics") if k in meta}  # fmt: skip

    @app.get("/healthz", response_model=Health, summary="Liveness")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home() -> HTMLResponse:
        return HTMLResponse(page.render(settings=settings, meta=meta))

    @app.post("/", response_class=HTMLResponse, include_in_schema=False)
    async def home_upload(request: Request) -> HTMLResponse:
        try:
            refuse_early()
            with budget.account() as take:
                images = await images_from_request(request, settings, "file", take)
                (result,) = await pool.run(analyze_all, images[:1], False, True, timeout=settings.timeout_s)
            if result.status == "error":
                raise ApiError(400, result.error_code or "bad_image", result.error or "not a usable image")
        except ApiError as exc:
            return HTMLResponse(page.render(settings=settings, meta=meta, error=exc.message), status_code=exc.status)
        annotated = None
        if result.faces:
            from faceattrs.inference.annotate import annotate

            buffer = io.BytesIO()
            annotate(result.image, result.faces).save(buffer, format="JPEG")  # the decoded image, not decoded again
            annotated = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
        return HTMLResponse(page.render(settings=settings, meta=meta, result=result, annotated=annotated))

    return app
