"""`cnnkit serve`: a model behind HTTP (FastAPI + uvicorn) with a web page.

app (create_app, settings, errors, the lifespan), routes (the endpoints), model (the checkpoint
run on micro-batches, described, explained), batching (the micro-batcher and its bounded queue),
uploads and limits (what an upload must be before it is decoded), security (bearer token, bind
warning), metrics (Prometheus text), command (the CLI's flags and uvicorn), static/ (the page).
"""
from __future__ import annotations

__all__ = ["Limits", "ServeSettings", "create_app"]


def __getattr__(name: str):
    # Lazy: `cnnkit --help` imports serve.command, which must not need FastAPI (the `serve` extra).
    if name in ("ServeSettings", "create_app"):
        from cnnkit.serve import app

        return getattr(app, name)
    if name == "Limits":
        from cnnkit.serve.limits import Limits

        return Limits
    raise AttributeError(name)
