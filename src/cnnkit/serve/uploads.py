"""The images of one request: multipart field `file` (one or several) or the raw body, size-capped.

The body is read in chunks and refused (413) as soon as it passes the cap, and at once when its
Content-Length already says so, so an oversized upload is never held whole in memory.
"""
from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request

from cnnkit.serve.limits import Limits, Rejected, check_filename

FIELD = "file"


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, at most `max_bytes` (else `Rejected` 413)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise Rejected(413, f"The request body ({int(declared):,} bytes) is over the {max_bytes:,}-byte limit.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise Rejected(413, f"The request body is over the {max_bytes:,}-byte limit.")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_images(request: Request, limits: Limits) -> list[tuple[str, bytes]]:
    """[(name, bytes)] of the request's images, in the order sent. Raises `Rejected` (400/413)."""
    body = await read_body(request, limits.max_bytes)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return [("upload", body)]

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=limits.max_files, max_fields=limits.max_files,
                                                         max_part_size=limits.max_bytes)
    except Exception as e:  # noqa: BLE001 - Starlette raises its HTTPException or parser errors on bad multipart
        detail = getattr(e, "detail", None) or str(e) or type(e).__name__
        raise Rejected(400, f"The multipart body cannot be read ({str(detail)[:160]}); send the images in the "
                            f"field '{FIELD}'.") from None
    try:
        files = [f for f in form.getlist(FIELD) if isinstance(f, UploadFile)]
        if not files:
            raise Rejected(400, f"No file in the multipart field '{FIELD}'; send each image as {FIELD}=@image.png.")
        return [(check_filename(f.filename), await f.read()) for f in files]
    finally:
        await form.close()
