"""Serving the pages, and the operator's live event stream (Server-Sent Events).

The stream is read with ``fetch`` rather than ``EventSource``: an operator token
travels in the ``Authorization`` header, never in a URL where access logs and
browser history would keep it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from csms.api.dependencies import OperatorDep, Services
from csms.events import Event

STATIC_DIRECTORY = Path(__file__).parent / "static"
# A comment line this often keeps proxies from closing an idle stream, and
# tells the page its link is alive.
KEEPALIVE_SECONDS = 15.0
# How long a page waits before reconnecting after the stream broke (ms).
RECONNECT_MILLISECONDS = 2000

# Same origin only: no inline script, no third-party code or frames.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)
live_router = APIRouter(prefix="/api/v1/operator", tags=["operator: live"])


class _StaticFiles(StaticFiles):
    """Static files with the pages' security headers, revalidated on each load."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-cache"
        return response


def static_files() -> StaticFiles:
    return _StaticFiles(directory=STATIC_DIRECTORY)


def _page(name: str) -> FileResponse:
    return FileResponse(
        STATIC_DIRECTORY / name,
        media_type="text/html; charset=utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


@router.get("/")
async def customer_app() -> FileResponse:
    return _page("customer.html")


@router.get("/operator")
async def operator_dashboard() -> FileResponse:
    return _page("operator.html")


@live_router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def operator_events(
    request: Request, services: Services, operator: OperatorDep
) -> StreamingResponse:
    """Server-Sent Events: ``station.changed``, ``charge.changed``,
    ``charges.expired`` and ``station.event_recorded`` as they are committed.

    A slow reader loses its oldest events rather than holding up the CSMS;
    reconnect and refetch to be sure of the current state.
    """

    async def stream() -> AsyncIterator[bytes]:
        async with services.events.subscription(idle=KEEPALIVE_SECONDS) as events:
            # Subscribed before this first line: whoever read it misses nothing.
            yield f"retry: {RECONNECT_MILLISECONDS}\n: connected\n\n".encode()
            async for event in events:
                if event is None:
                    yield b": keep-alive\n\n"
                else:
                    yield format_event(event)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def format_event(event: Event) -> bytes:
    """One SSE message: the event's kind as its name, its data as one JSON line."""
    return b"event: %s\ndata: %s\n\n" % (event.kind.encode(), orjson.dumps(event.data))
