"""The HTTP API: FastAPI routes over the prediction core, safe under load and bad input.

* Limits (``ApiSettings``, env ``FACEATTRS_API_*``): request bytes, decoded
  pixels, images per batch, per-request timeout, inference workers and queue.
* Content is sniffed by decoding, never trusted from a name or a header.
* Every error is ``{"error": {"code", "message"}}`` with a 4xx/5xx status; no
  stack trace leaves the server.
* Images stay in memory: bodies are read into bytes (multipart parts are kept
  in RAM, never spooled to a temporary file) and nothing about them is logged.
* Inference runs in a bounded thread pool off the event loop; when workers
  and queue are full the answer is 503 with ``Retry-After``.

>>> app = create_app(ApiSettings())  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser

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
from faceattrs.inference.analyzer import Analyzer, ImageResult

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

    @classmethod
    def from_env(cls, **overrides: Any) -> ApiSettings:
        """Defaults, overridden by ``FACEATTRS_API_<NAME>`` variables, overridden by ``overrides`` that are not None."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = os.environ.get(f"FACEATTRS_API_{f.name.upper()}")
            if raw is not None:
                values[f.name] = float(raw) if f.type == "float" else int(raw)
        return cls(**(values | {k: v for k, v in overrides.items() if v is not None}))


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with HTTP ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


ERRORS = {
    400: {"model": ErrorResponse, "description": "not a usable image (not_an_image, corrupt, empty, ...)"},
    413: {"model": ErrorResponse, "description": "request or image too large"},
    415: {"model": ErrorResponse, "description": "unsupported content type"},
    422: {"model": ErrorResponse, "description": "invalid parameters"},
    503: {"model": ErrorResponse, "description": "queue full; retry after the Retry-After seconds"},
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
    """A fixed number of inference threads and a bounded queue in front of them."""

    def __init__(self, workers: int, queue_size: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="faceattrs-infer")
        self.capacity = workers + queue_size
        self.admitted = 0

    async def run(self, fn, *args, timeout: float):
        """``fn(*args)`` on an inference thread; 503 when threads and queue are full, 504 past ``timeout`` seconds."""
        if self.admitted >= self.capacity:
            raise ApiError(503, "queue_full", "the server is busy; retry shortly", {"Retry-After": "1"})
        self.admitted += 1
        try:
            future = asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise ApiError(504, "timeout", f"analysis took longer than {timeout:g} s") from None
        finally:
            self.admitted -= 1


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "request_too_large", f"the request is larger than {limit // (1024 * 1024)} MB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "request_too_large", f"the request is larger than {limit // (1024 * 1024)} MB")
        chunks.append(chunk)
    return b"".join(chunks)


async def images_from_request(request: Request, settings: ApiSettings, field: str) -> list[tuple[str | None, bytes]]:
    """(filename, bytes) of the uploaded images: multipart ``field`` parts, or the raw body."""
    body = await read_body(request, settings.max_request_bytes)
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
    meta = analyzer.model.metadata
    model_info = ModelInfo(name=meta["name"], version=str(meta["version"]), sha256=meta["sha256"])

    app = FastAPI(
        title="faceattrs API",
        version="1",
        description="Apparent age (with a 90% range), gender and ethnicity for every face in an image. "
        "Images are processed in memory and never stored. Trained on UTKFace: non-commercial research only; "
        "never use the output to make decisions about individuals.",
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
        images = await images_from_request(request, settings, "file")
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
        images = await images_from_request(request, settings, "files")
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
            images = await images_from_request(request, settings, "file")
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
