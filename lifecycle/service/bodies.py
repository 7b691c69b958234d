"""Request bodies, read as sent and never past the cap: a webhook's signed bytes and a
trigger's JSON payload alike (`lifecycle.adapters.MAX_BODY_BYTES`, 1 MiB), so no request can make
a worker hold more than that in memory."""

from __future__ import annotations

from fastapi import Request
from starlette.exceptions import HTTPException

from lifecycle.adapters import MAX_BODY_BYTES


async def capped_body(request: Request) -> bytes:
    """The body, refused with 413 once it is known to exceed the cap (from Content-Length,
    else as it streams in)."""
    cap = MAX_BODY_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise HTTPException(413, f"the body is over {cap} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise HTTPException(413, f"the body is over {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
