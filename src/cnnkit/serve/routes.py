"""The HTTP endpoints: /predict, /explain, /health, /info, /metrics, and the page at /.

Every GET route also answers HEAD (the same status and headers, no body): load balancers and uptime
checkers probe with HEAD, and FastAPI's `router.get`, unlike Starlette's `Route`, registers GET only.

Each handler reads the app's `Served` state (`request.app.state.served`); inference runs on the
batcher's thread and images larger than `INLINE_PIXELS` are decoded in the thread pool, so the event
loop only moves bytes, reads headers and decodes thumbnails.
"""
from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from cnnkit.json_output import finite
from cnnkit.serve.limits import Rejected, check_upload, decode_checked
from cnnkit.serve.model import Item
from cnnkit.serve.security import check_bearer
from cnnkit.serve.uploads import read_images

_bearer = HTTPBearer(auto_error=False, description="the server's --token / CNNKIT_TOKEN")
# Both upload forms, for /docs: the handlers read the body themselves (size cap before parsing).
UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}}
router = APIRouter()
# Images of at most this many pixels are decoded on the event loop: under bench/serve_load.py the
# thread-pool hop cost the loop more than decoding a 28 x 28 PNG (0.24 ms; micro-batched throughput
# 258 -> 297 images/s, one round each); bigger ones go to the pool (a 256 x 256 PNG of random noise
# decodes in 1.2 ms) so the loop keeps answering meanwhile.
INLINE_PIXELS = 256 * 256


def get(path: str, **kwargs):
    """`router.get`, plus a HEAD route to the same handler behind the same dependencies (the token).
    The HEAD twin stays out of the OpenAPI schema: one method per route there, or FastAPI warns
    about a duplicate operation id. The server (uvicorn) sends no body for HEAD."""
    def register(endpoint):
        router.add_api_route(path, endpoint, methods=["GET"], **kwargs)
        router.add_api_route(path, endpoint, methods=["HEAD"], **{**kwargs, "include_in_schema": False})
        return endpoint
    return register


async def authorized(request: Request, _=Depends(_bearer)) -> None:
    check_bearer(request.headers.get("authorization"), request.app.state.served.settings.token)


async def _decoded(request: Request) -> list[Item]:
    served = request.app.state.served
    limits = served.settings.limits
    uploads = await read_images(request, limits)
    if len(uploads) > limits.max_files:
        raise Rejected(413, f"{len(uploads)} images in one request; send at most {limits.max_files}.")
    channels, items = served.model.channels, []
    for i, (name, data) in enumerate(uploads, start=1):
        if check_upload(data, name, limits) <= INLINE_PIXELS:  # the header only: cheap on the loop
            image = decode_checked(data, name, channels)
        else:
            image = await run_in_threadpool(decode_checked, data, name, channels)
        items.append(Item(image, name, i))
    return items


@router.post("/predict", dependencies=[Depends(authorized)], openapi_extra=UPLOAD_BODY,
             summary="Predict one or several images")
async def predict(request: Request, top_k: int = Query(5, ge=1, le=1000, description="classes listed (classify)"),
                  conf: float | None = Query(None, ge=0, le=1, description="score threshold (boxes)"),
                  iou: float | None = Query(None, ge=0, le=1, description="NMS IoU threshold (boxes)")) -> JSONResponse:
    """Images in the multipart field `file` (several allowed) or as the raw body -> one record per
    image: top-k classes, boxes with labels and scores, or a mask as COCO RLE with per-class pixel
    counts; `model_ms` is the forward pass the image was batched into."""
    served = request.app.state.served
    start = time.perf_counter()
    items = await _decoded(request)
    options = {"top_k": top_k, **{k: v for k, v in (("conf", conf), ("iou", iou)) if v is not None}}
    for item in items:
        item.options = options
    futures = served.batcher.submit(items)
    try:
        results = await asyncio.wait_for(asyncio.gather(*futures), served.settings.timeout_s)
    except asyncio.TimeoutError:
        for f in futures:
            f.cancel()
        raise Rejected(504, f"No answer within {served.settings.timeout_s:g} s; retry later or send fewer images.",
                       {"Retry-After": "1"}) from None
    # finite(): a NaN score (a diverged model) becomes null; Starlette refuses NaN in a JSON response.
    # A JSONResponse, not a dict: FastAPI's validation and re-encoding of a returned dict is per-request
    # work on the event loop that a record of plain JSON types does not need.
    return JSONResponse(finite({"task": served.model.task.name, "results": results,
                                "total_ms": round((time.perf_counter() - start) * 1000, 3)}))


@router.post("/explain", dependencies=[Depends(authorized)], openapi_extra=UPLOAD_BODY,
             response_class=Response, responses={200: {"content": {"image/png": {}}}},
             summary="What the model looks at, as a PNG overlay")
async def explain(request: Request, method: Literal["gradcam", "ig", "occlusion"] = "gradcam",
                  target: str | None = Query(None, max_length=200, description="class, box index or x1,y1,x2,y2"),
                  steps: int = Query(32, ge=1, le=256, description="integrated-gradients steps"),
                  window: int = Query(8, ge=1, le=256), stride: int = Query(4, ge=1, le=256)) -> Response:
    """One image -> PNG: the image with the method's importance map over it."""
    served = request.app.state.served
    items = await _decoded(request)
    if len(items) != 1:
        raise Rejected(400, f"/explain takes one image, got {len(items)}.")
    if served.explaining >= served.settings.max_explain:
        raise Rejected(503, "Explanations are busy; retry in a few seconds.", {"Retry-After": "2"})
    served.explaining += 1
    options = {"steps": steps, "window": window, "stride": stride}
    try:
        job = served.batcher.run_exclusive(
            lambda: served.model.explain_png(items[0].image, method, target, options))
        png = await asyncio.wait_for(job, served.settings.timeout_s)
    except asyncio.TimeoutError:
        raise Rejected(504, f"No explanation within {served.settings.timeout_s:g} s.") from None
    finally:
        served.explaining -= 1
    return Response(png, media_type="image/png")


@get("/health", summary="Liveness: open without a token")
async def health(request: Request) -> JSONResponse:
    served = request.app.state.served
    ok = not served.draining
    return JSONResponse({"status": "ok" if ok else "draining", "queue_depth": served.batcher.depth},
                        status_code=200 if ok else 503)


@get("/info", dependencies=[Depends(authorized)], summary="The model card")
async def info(request: Request) -> dict:
    served = request.app.state.served
    s, lim = served.settings, served.settings.limits
    return finite({**served.model.info(), "server": {
        "max_batch": s.max_batch, "max_wait_ms": s.max_wait_ms, "max_queue": s.max_queue, "timeout_s": s.timeout_s,
        "max_upload_bytes": lim.max_bytes, "max_pixels": lim.max_pixels, "max_files": lim.max_files,
        "formats": list(lim.formats), "token_required": s.token is not None}})


@get("/metrics", dependencies=[Depends(authorized)], response_class=Response,
     summary="Prometheus text: requests, latency, batch sizes, queue depth")
async def metrics(request: Request) -> Response:
    m = request.app.state.served.metrics
    return Response(m.render(), media_type=m.content_type)


@get("/", include_in_schema=False)
async def page(request: Request) -> FileResponse:
    return FileResponse(request.app.state.served.static / "index.html", media_type="text/html")
