"""`cnnkit serve RUN_DIR|CKPT|MODEL.onnx`: the flags, the bind warning, and uvicorn.

With `--workers 1` (the default) the model is loaded before uvicorn starts, so a bad checkpoint is
one line on stderr; with more, each uvicorn worker process builds its own app (and model) from the
same settings, passed in the environment (`app_from_env`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from cnnkit.errors import CnnkitError

ENV = "CNNKIT_SERVE_SETTINGS"


def add_serve_parser(sub) -> None:
    s = sub.add_parser("serve", help="serve a model over HTTP with a web page (FastAPI + uvicorn)",
                       description="Serve a run, a checkpoint (.pt, .safetensors) or an exported .onnx file: "
                                   "POST /predict, POST /explain, GET /health, /info, /metrics, the page at /, "
                                   "OpenAPI at /docs.")
    s.add_argument("source", metavar="RUN_DIR|CKPT|MODEL.onnx")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--token", help="bearer token required on /predict, /explain, /info and /metrics (/health, the page "
                        "and /docs stay open; default: $CNNKIT_TOKEN)")
    s.add_argument("--max-batch", type=int, default=32, help="images per forward pass at most (1: no batching)")
    s.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a batch waits to fill (default: 5)")
    s.add_argument("--max-queue", type=int, default=256, help="images waiting at most; more get 503 + Retry-After")
    s.add_argument("--timeout-s", type=float, default=30.0, help="per-request time limit (504 past it)")
    s.add_argument("--max-upload-mb", type=float, default=10.0, help="request body limit in MiB (413 past it)")
    s.add_argument("--max-pixels", type=int, default=25_000_000, help="width x height limit per image (413)")
    s.add_argument("--cors", metavar="ORIGIN", help="allow this one origin (CORS is off otherwise)")
    s.add_argument("--workers", type=int, default=1, help="uvicorn worker processes, each with its own model")
    s.add_argument("--threads", type=int, help="torch CPU threads per worker (default: the run's)")
    s.add_argument("--device", default="auto")
    s.add_argument("--access-log", action="store_true",
                   help="log a line per request (uvicorn's access log; off by default: under load it took ~8 %% "
                        "of the event loop's time, and GET /metrics counts requests by endpoint and status)")


def _settings(args: argparse.Namespace):
    from cnnkit.serve.app import ServeSettings
    from cnnkit.serve.limits import Limits
    from cnnkit.serve.security import resolve_token

    for flag, value, low in (("--max-batch", args.max_batch, 1), ("--max-queue", args.max_queue, 1),
                             ("--workers", args.workers, 1), ("--port", args.port, 0)):
        if value < low:
            raise CnnkitError(f"{flag} must be at least {low}, got {value}.")
    for flag, value in (("--max-wait-ms", args.max_wait_ms), ("--timeout-s", args.timeout_s),
                        ("--max-upload-mb", args.max_upload_mb), ("--max-pixels", args.max_pixels)):
        if not value > 0 and not (flag == "--max-wait-ms" and value == 0):
            raise CnnkitError(f"{flag} must be positive, got {value}.")
    limits = Limits(max_bytes=int(args.max_upload_mb * 1024 * 1024), max_pixels=int(args.max_pixels))
    return ServeSettings(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                         timeout_s=args.timeout_s, token=resolve_token(args.token), cors=args.cors, limits=limits)


def serve_command(args: argparse.Namespace) -> int:
    """Run the server until SIGINT/SIGTERM (in-flight requests finish first)."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise CnnkitError(f"cnnkit serve needs the serve extra ({e.name} is missing): "
                          "pip install 'cnnkit[serve]'.") from None

    from cnnkit.serve.security import bind_warning

    settings = _settings(args)
    warning = bind_warning(args.host, settings.token)
    if warning:
        print(warning, file=sys.stderr)
    grace = settings.timeout_s + 5
    if args.workers > 1:
        os.environ[ENV] = json.dumps({"source": args.source, "device": args.device, "threads": args.threads,
                                      "args": {k: v for k, v in vars(args).items() if k not in ("token",)}})
        if settings.token:  # children read it from the environment, never from a file
            os.environ["CNNKIT_TOKEN"] = settings.token
        uvicorn.run("cnnkit.serve.command:app_from_env", factory=True, host=args.host, port=args.port,
                    workers=args.workers, timeout_graceful_shutdown=grace, access_log=args.access_log)
        return 0
    from cnnkit.serve.app import create_app
    from cnnkit.serve.model import ServedModel

    app = create_app(ServedModel(args.source, device=args.device, threads=args.threads), settings)
    uvicorn.run(app, host=args.host, port=args.port, timeout_graceful_shutdown=grace, access_log=args.access_log)
    return 0


def app_from_env():
    """The app of one uvicorn worker process (`--workers N`), from the settings the parent left."""
    from cnnkit.serve.app import create_app
    from cnnkit.serve.model import ServedModel

    spec = json.loads(os.environ[ENV])
    args = argparse.Namespace(**{**spec["args"], "token": None})
    return create_app(ServedModel(spec["source"], device=spec["device"], threads=spec["threads"]), _settings(args))
