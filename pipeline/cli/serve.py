"""``pipeline serve``: an HTTP service (FastAPI + uvicorn) over one or more trained run folders."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import signal
import socket
from pathlib import Path

from pipeline.errors import PipelineError

log = logging.getLogger("pipeline.serve")

INSTALL_HINT = "pip install ja-rnn-pipeline[serve]"


def register(commands) -> None:
    serve = commands.add_parser(
        "serve", help="serve trained runs over HTTP (classify, explain, generate, read) with a web page",
        description="Load each --model run folder once and answer JSON requests: POST /v1/classify, /v1/explain, "
                    "/v1/generate, /v1/read; GET /v1/models, /healthz, /readyz; the API is described at /docs. "
                    "A model's name is its run folder's name. Concurrent classify requests share one model call "
                    "(micro-batching). SIGHUP or POST /v1/models/reload swaps in republished runs; SIGTERM "
                    "finishes the requests in flight and exits 0.")
    serve.add_argument("--model", "-m", dest="models", type=Path, action="append", required=True,
                       metavar="RUN_FOLDER", help="a run folder to serve, e.g. saved_models/default (repeatable)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: %(default)s, this machine only; 0.0.0.0: every "
                            "interface, then use --token-file)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default: %(default)s)")
    serve.add_argument("--token-file", type=Path, metavar="FILE",
                       help="require 'Authorization: Bearer <token>' with the token in FILE (its first line) on "
                            "every path but /healthz, /readyz, the web page and /docs")
    serve.add_argument("--cors-origin", dest="cors_origins", action="append", default=[], metavar="URL",
                       help="let a web page from this origin call the API, e.g. http://localhost:5173 "
                            "(repeatable; default: no CORS headers)")
    serve.add_argument("--batch-window-ms", type=float, default=0.0, metavar="MS",
                       help="how long a classify request waits for others to share its model call; requests "
                            "that arrive while the model is busy share the next call anyway (default: %(default)s)")
    serve.add_argument("--max-batch", type=int, default=64, metavar="N",
                       help="texts per model call at most (default: %(default)s)")
    limits = serve.add_argument_group("limits (larger requests get a 4xx JSON error)")
    limits.add_argument("--max-body-bytes", type=int, default=1_000_000, metavar="BYTES",
                        help="request body (default: %(default)s)")
    limits.add_argument("--max-texts", type=int, default=64, metavar="N",
                        help="texts per request (default: %(default)s)")
    limits.add_argument("--max-text-chars", type=int, default=2_000, metavar="N",
                        help="characters per text (default: %(default)s)")
    limits.add_argument("--max-prompt-chars", type=int, default=1_000, metavar="N",
                        help="characters of a generate prompt (default: %(default)s)")
    limits.add_argument("--max-generate-tokens", type=int, default=200, metavar="N",
                        help="largest max_tokens of a generate request (default: %(default)s)")
    limits.add_argument("--max-samples", type=int, default=10, metavar="N",
                        help="largest num of a generate request (default: %(default)s)")
    limits.add_argument("--max-pending", type=int, default=1_024, metavar="N",
                        help="requests waiting for one model before 503 overloaded (default: %(default)s)")
    limits.add_argument("--shutdown-timeout", type=float, default=60.0, metavar="SECONDS",
                        help="seconds SIGTERM waits for requests in flight (default: %(default)s)")
    serve.set_defaults(handler=command_serve)


def model_folders(folders: list[Path]) -> dict[str, Path]:
    """Model name (the folder's name) -> folder; a missing folder or two runs with one name is an error."""
    models: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            raise PipelineError(f"{folder}: run folder not found; pass --model saved_models/<run>")
        if not (folder / "config.json").is_file():
            raise PipelineError(f"{folder}: not a run folder (no config.json); pass --model saved_models/<run>")
        name = folder.resolve().name
        if name in models:
            raise PipelineError(f"two models named {name!r} ({models[name]} and {folder}); a model's name is its "
                                "run folder's name, so copy one to a folder of another name")
        models[name] = folder
    return models


def read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise PipelineError(f"{path}: cannot read the token file ({getattr(error, 'strerror', None) or error}); "
                            "pass a readable UTF-8 file with the token on its first line") from None
    token = lines[0].strip() if lines else ""
    if len(token) < 16 or not token.isascii() or not token.isprintable() or " " in token:
        raise PipelineError(f"{path}: the token must be one line of at least 16 printable ASCII characters "
                            "without spaces, e.g. from `python -c \"import secrets; print(secrets.token_urlsafe())\"`")
    return token


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a port in use or an unknown host is a one-line PipelineError."""
    if not 0 <= port <= 65535:
        raise PipelineError(f"--port must be in 0..65535, got {port}")
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                proto=socket.IPPROTO_TCP)[0]
        # protocol IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on such sockets, and without it every
        # response waits ~40 ms for the client's delayed ACK (Nagle)
        listener = socket.socket(family, kind, protocol)
    except OSError as error:
        raise PipelineError(f"--host {host}: cannot listen there ({error}); use e.g. 127.0.0.1") from None
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise PipelineError(f"{host}:{port}: address already in use; pass another --port") from None
        raise PipelineError(f"{host}:{port}: cannot listen there ({error.strerror}); pass another --host or "
                            "--port") from None
    return listener


def command_serve(args: argparse.Namespace) -> int:
    # Everything a user can get wrong is checked before TensorFlow loads.
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as error:
        raise PipelineError(f"pipeline serve needs the 'serve' extra ({error.name} is not installed); "
                            f"{INSTALL_HINT}") from None
    from pipeline.serve.app import ServeSettings, create_app

    models = model_folders(args.models)
    token = read_token(args.token_file)
    failure: list[str] = []
    server: uvicorn.Server | None = None

    def stop_on_failure(message: str) -> None:
        failure.append(message)
        if server is not None:
            server.should_exit = True

    settings = ServeSettings(
        token=token, cors_origins=tuple(args.cors_origins), batch_window_ms=args.batch_window_ms,
        max_batch=args.max_batch, max_body_bytes=args.max_body_bytes, max_texts=args.max_texts,
        max_text_chars=args.max_text_chars, max_prompt_chars=args.max_prompt_chars,
        max_generate_tokens=args.max_generate_tokens, max_samples=args.max_samples, max_pending=args.max_pending,
        reload_on_sighup=True, on_load_failure=stop_on_failure)
    if args.shutdown_timeout <= 0:
        raise PipelineError(f"--shutdown-timeout must be > 0 seconds, got {args.shutdown_timeout}")
    listener = bind(args.host, args.port)
    if token is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s without --token-file: anyone who can reach this machine can use the models",
                    args.host)
    app = create_app(models, settings)
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=args.shutdown_timeout,
                            server_header=False)
    server = uvicorn.Server(config)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    log.info("serving %s on http://%s:%d (loading; GET /readyz answers 200 when ready)", ", ".join(models), shown,
             listener.getsockname()[1])
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully: with these handlers that
    # is a no-op, so SIGTERM and Ctrl-C end with exit status 0 instead of death by signal.
    previous = {sig: signal.signal(sig, lambda number, frame: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with listener:
            server.run(sockets=[listener])
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
    if failure:
        raise PipelineError(failure[0])
    log.info("stopped")
    return 0
