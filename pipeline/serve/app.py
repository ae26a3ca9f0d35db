"""The HTTP service: FastAPI over the one :func:`pipeline.load_run` API (``pipeline serve`` runs it with uvicorn).

Endpoints (request and response bodies: :mod:`pipeline.serve.schemas`, also at ``/docs``):

* ``GET /healthz``: 200 while the process is alive; ``GET /readyz``: 200 once every model is loaded, else 503;
* ``GET /v1/models``: name, task, labels, metrics, config fingerprint, creation time, pipeline version;
* ``POST /v1/classify``, ``/v1/explain``, ``/v1/generate``, ``/v1/read``: the :class:`pipeline.runs.Run`
  methods of the same names;
* ``POST /v1/models/reload``: swap in the runs whose folders were republished (SIGHUP does the same);
* ``GET /`` and ``/static/...``: the web page (``pipeline/serve/static/``), when installed.

Runs load in a background thread at startup, so ``/healthz`` answers at once. Model calls run on each
model's worker thread (:mod:`pipeline.serve.store`); concurrent classify and explain requests are batched
into one call (:mod:`pipeline.serve.batching`). Every error is a 4xx (or 503 while loading or overloaded)
with ``{"error": {"code", "message"}}``, the message one line saying what to change; bad input never gets
a 500. With a token, every path but ``/healthz``, ``/readyz``, the page and the API documentation requires
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Response, Security
from fastapi.responses import FileResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles

from pipeline import __version__
from pipeline.errors import PipelineError
from pipeline.serve import schemas
from pipeline.serve.batching import MicroBatcher
from pipeline.serve.errors import ApiError, add_error_handlers
from pipeline.serve.middleware import BearerToken, BodyLimit, RequestLog
from pipeline.serve.store import ModelSlot, ModelStore

log = logging.getLogger("pipeline.serve")

STATIC_FOLDER = Path(__file__).parent / "static"
PUBLIC_PATHS = ("/healthz", "/readyz", "/", "/favicon.ico", "/docs", "/docs/oauth2-redirect", "/openapi.json")
BATCHED = ("classify", "explain")  # the methods whose concurrent requests share one model call
KINDS = {"classify": "classifier", "explain": "classifier", "generate": "generator", "read": "reading model"}


@dataclass(frozen=True)
class ServeSettings:
    """How ``pipeline serve`` runs; every limit has a default that a normal client never meets.

    Attributes:
        token: the bearer token every non-public path requires; None: no token.
        cors_origins: origins a browser may call the API from (another host or port); (): no CORS headers.
        batch_window_ms: how long a classify/explain request waits for others to share its model call.
        max_batch: at most this many texts per model call.
        max_body_bytes: larger request bodies get 413.
        max_texts: texts per classify/explain/read request.
        max_text_chars: characters per text.
        max_prompt_chars: characters of a generate prompt (each sampled token reads the whole prompt again).
        max_generate_tokens: the largest ``max_tokens`` of a generate request.
        max_samples: the largest ``num`` of a generate request.
        max_pending: requests waiting for one model's batch before 503 (overloaded).
        reload_on_sighup: SIGHUP reloads republished runs (only the process's main thread can listen).
        warm_up: call each run once after loading, so that /readyz means "answers at full speed".
        static_folder: the web page's files (default: the package's ``static/``).
        on_load_failure: called with the message when a run cannot be loaded at startup (the CLI exits).
    """

    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    batch_window_ms: float = 0.0
    max_batch: int = 64
    max_body_bytes: int = 1_000_000
    max_texts: int = 64
    max_text_chars: int = 2_000
    max_prompt_chars: int = 1_000
    max_generate_tokens: int = 200
    max_samples: int = 10
    max_pending: int = 1_024
    reload_on_sighup: bool = False
    warm_up: bool = True
    static_folder: Path | None = None
    on_load_failure: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_body_bytes", "max_texts", "max_text_chars", "max_prompt_chars",
                     "max_generate_tokens", "max_samples", "max_pending"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PipelineError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
        if not 0 <= self.batch_window_ms <= 1000:
            raise PipelineError(f"--batch-window-ms must be in [0, 1000], got {self.batch_window_ms}")
        if self.token is not None and not self.token:
            raise PipelineError("the token is empty; put a long random string in --token-file")


class Service:
    """The loaded models and their batchers, shared by the endpoints."""

    def __init__(self, store: ModelStore, settings: ServeSettings) -> None:
        self.store = store
        self.settings = settings
        self.batchers: dict[tuple[str, str], MicroBatcher] = {}
        self.reloads: set[asyncio.Task] = set()  # SIGHUP's reloads, referenced until done (asyncio keeps weak ones)

    def reload_in_background(self) -> None:
        task = asyncio.get_running_loop().create_task(reload_logged(self))
        self.reloads.add(task)
        task.add_done_callback(self.reloads.discard)

    def start_batchers(self) -> None:
        for slot in self.store.slots.values():
            for method in BATCHED:
                batcher = MicroBatcher(functools.partial(slot.call_async, method),
                                       self.settings.batch_window_ms / 1000, self.settings.max_batch,
                                       self.settings.max_pending)
                batcher.start()
                self.batchers[slot.name, method] = batcher

    async def close(self) -> None:
        for batcher in self.batchers.values():
            await batcher.close()
        self.store.close()

    def check_ready(self) -> None:
        if self.store.failure:
            raise ApiError(503, "load_failed", self.store.failure)
        if not self.store.ready:
            raise ApiError(503, "not_ready", f"still loading {', '.join(self.store.loading())}; poll GET /readyz "
                                             "until it answers 200")

    def resolve(self, name: str | None, method: str) -> ModelSlot:
        """The slot that serves ``method`` for a request naming ``name`` (None: the only model that can)."""
        self.check_ready()
        slots = self.store.slots
        able = [slot.name for slot in slots.values() if slot.served.can(method)]
        kind = KINDS.get(method, method)
        if name is None:
            if len(able) == 1:
                return slots[able[0]]
            if not able:
                raise ApiError(422, "wrong_task", f"no loaded model can {method}; loaded: {described(slots)}")
            raise ApiError(422, "model_required", f"model: several {kind}s are loaded ({', '.join(able)}); "
                                                  "name one in \"model\"")
        if name not in slots:
            raise ApiError(404, "unknown_model", f"model {name!r} is not loaded; loaded: {described(slots)}")
        if name not in able:
            others = f"use one of: {', '.join(able)}" if able else "no loaded model can"
            raise ApiError(422, "wrong_task", f"model {name!r} is a {slots[name].served.run.task} run and cannot "
                                              f"{method}; {others}")
        return slots[name]

    def check_texts(self, texts: list[str]) -> None:
        limit = self.settings.max_texts
        if len(texts) > limit:
            raise ApiError(422, "too_many_texts", f"texts: {len(texts)} texts; send at most {limit} per request")
        for index, text in enumerate(texts):
            if len(text) > self.settings.max_text_chars:
                raise ApiError(422, "text_too_long", f"texts[{index}]: {len(text)} characters; send at most "
                                                     f"{self.settings.max_text_chars} per text (split it)")
            if not text.strip():
                raise ApiError(422, "empty_text", f"texts[{index}]: empty or blank text; send at least one "
                                                  "non-space character")

    async def batched(self, slot: ModelSlot, method: str, texts: list[str]) -> list[dict]:
        return await self.batchers[slot.name, method].submit(texts)


def described(slots: dict[str, ModelSlot]) -> str:
    return ", ".join(f"{name} ({slot.served.run.task})" if slot.served else f"{name} (loading)"
                     for name, slot in slots.items()) or "none"


def model_headers(response: Response, slot: ModelSlot) -> None:
    """Which run answered: its config fingerprint and the pipeline version (as TF Serving's model version)."""
    response.headers["X-Model-Fingerprint"] = slot.served.info["fingerprint"]
    response.headers["X-Pipeline-Version"] = __version__


def create_app(models: dict[str, Path], settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI application serving the runs ``models`` (name -> run folder), each loaded once at startup."""
    settings = settings or ServeSettings()
    service = Service(ModelStore({name: Path(folder) for name, folder in models.items()}, settings.warm_up),
                      settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        loop = asyncio.get_running_loop()
        service.start_batchers()
        service.store.start_loading(settings.on_load_failure)
        if settings.reload_on_sighup:
            loop.add_signal_handler(signal.SIGHUP, service.reload_in_background)
        try:
            yield
        finally:
            if settings.reload_on_sighup:
                loop.remove_signal_handler(signal.SIGHUP)
            await service.close()

    app = FastAPI(title="ja-rnn-pipeline", version=__version__, lifespan=lifespan,
                  description="Classify, explain, generate and read Japanese text with trained run folders. "
                              "Errors: `{\"error\": {\"code\", \"message\"}}`.",
                  responses={422: {"model": schemas.ErrorResponse}, 503: {"model": schemas.ErrorResponse}})
    app.state.service = service
    add_error_handlers(app)
    add_routes(app, service, settings)
    serve_static(app, settings.static_folder or STATIC_FOLDER)
    # Middleware added last runs first: the log line, CORS (answers preflights), the token, the body limit.
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if settings.token is not None:
        app.add_middleware(BearerToken, token=settings.token, public=PUBLIC_PATHS, public_prefixes=("/static/",))
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)
    app.add_middleware(RequestLog)
    return app


async def reload_logged(service: Service) -> dict[str, list]:
    """Reload republished runs on a thread (the event loop keeps answering), log what happened."""
    report = await asyncio.get_running_loop().run_in_executor(None, service.store.reload_changed)
    log.info("reload: %d reloaded, %d unchanged, %d failed", len(report["reloaded"]), len(report["unchanged"]),
             len(report["failed"]))
    return report


def add_routes(app: FastAPI, service: Service, settings: ServeSettings) -> None:
    # Documents the bearer token in /openapi.json (the "Authorize" button of /docs); BearerToken checks it.
    secured = [Security(HTTPBearer(auto_error=False))] if settings.token is not None else []
    errors = {code: {"model": schemas.ErrorResponse} for code in (400, 401, 404, 413)}

    @app.get("/healthz", response_model=schemas.Status, response_model_exclude_none=True, tags=["health"])
    async def healthz() -> dict:
        """200 while the process is alive (models may still be loading)."""
        return {"status": "alive"}

    @app.get("/readyz", response_model=schemas.Status, tags=["health"])
    async def readyz() -> dict:
        """200 once every model is loaded and warmed up; 503 before (or when one cannot be loaded)."""
        service.check_ready()
        return {"status": "ready", "models": list(service.store.slots)}

    @app.get("/v1/models", response_model=schemas.ModelsResponse, dependencies=secured, responses=errors,
             tags=["models"])
    async def list_models() -> dict:
        """Every served model: name, task, labels, metrics, config fingerprint, creation time, version."""
        service.check_ready()
        return {"models": [slot.served.info for slot in service.store.slots.values()]}

    @app.post("/v1/models/reload", response_model=schemas.ReloadResponse, dependencies=secured,
              responses=errors, tags=["models"])
    async def reload_models() -> dict:
        """Swap in every run whose folder was republished (run.json, config or model changed); requests keep
        being answered by the old run until the new one is loaded. SIGHUP does the same."""
        service.check_ready()
        return await reload_logged(service)

    async def per_text(method: str, body: schemas.TextsRequest, response: Response) -> dict:
        """``run.<method>`` over the request's texts, batched with concurrent requests."""
        service.check_texts(body.texts)
        slot = service.resolve(body.model, method)
        results = await service.batched(slot, method, body.texts)
        model_headers(response, slot)
        return {"model": slot.name, "results": results}

    @app.post("/v1/classify", response_model=schemas.ClassifyResponse, dependencies=secured, responses=errors,
              tags=["predict"])
    async def classify(body: schemas.TextsRequest, response: Response) -> dict:
        """A label and every label's probability per text; concurrent requests share one model call."""
        return await per_text("classify", body, response)

    @app.post("/v1/explain", response_model=schemas.ExplainResponse, dependencies=secured, responses=errors,
              tags=["predict"])
    async def explain(body: schemas.TextsRequest, response: Response) -> dict:
        """classify's result plus a weight per token (attention, or occlusion for other models)."""
        return await per_text("explain", body, response)

    @app.post("/v1/generate", response_model=schemas.GenerateResponse, dependencies=secured, responses=errors,
              tags=["predict"])
    async def generate(body: schemas.GenerateRequest, response: Response) -> dict:
        """``num`` samples continuing ``prompt``; the same seed and settings give the same samples."""
        if len(body.prompt) > settings.max_prompt_chars:
            raise ApiError(422, "text_too_long", f"prompt: {len(body.prompt)} characters; send at most "
                                                 f"{settings.max_prompt_chars}")
        if body.max_tokens > settings.max_generate_tokens:
            raise ApiError(422, "invalid_request", f"max_tokens: {body.max_tokens}; at most "
                                                   f"{settings.max_generate_tokens}")
        if body.num > settings.max_samples:
            raise ApiError(422, "invalid_request", f"num: {body.num}; at most {settings.max_samples} samples")
        slot = service.resolve(body.model, "generate")
        samples = await slot.call_async(
            "generate", body.prompt, num=body.num, seed=body.seed, label=body.label, temperature=body.temperature,
            top_k=body.top_k, top_p=body.top_p, max_tokens=body.max_tokens,
            repetition_penalty=body.repetition_penalty, no_repeat_ngram=body.no_repeat_ngram)
        model_headers(response, slot)
        return {"model": slot.name, "samples": samples}

    @app.post("/v1/read", response_model=schemas.ReadResponse, dependencies=secured, responses=errors,
              tags=["predict"])
    async def read(body: schemas.ReadRequest, response: Response) -> dict:
        """The katakana reading of each text (beam search)."""
        service.check_texts(body.texts)
        slot = service.resolve(body.model, "read")
        results = await slot.call_async("read", body.texts, beam_size=body.beam_size,
                                        length_penalty=body.length_penalty)
        model_headers(response, slot)
        return {"model": slot.name, "results": [{key: result[key] for key in ("text", "reading", "log_probability")}
                                                for result in results]}


def serve_static(app: FastAPI, folder: Path) -> None:
    """``GET /`` answers the page's ``index.html`` and ``/static/...`` its files, when the page is installed."""
    app.mount("/static", StaticFiles(directory=folder, check_dir=False), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        page = folder / "index.html"
        if not page.is_file():
            raise ApiError(404, "not_found", "no web page installed; use the API (see /docs)")
        return FileResponse(page, media_type="text/html")
