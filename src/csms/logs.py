"""Structured logging with structlog.

Level policy (also in ``docs/logging.md``): ERROR is our own bug; WARNING a station
or client misbehaved and we coped; INFO is lifecycle (connect, boot, disconnect,
start, stop); DEBUG is frames. Payloads appear only at DEBUG, with id tokens masked.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from csms.settings import LogFormat

_SECRET_KEYS = frozenset({"idTag", "idToken", "password", "token"})


def mask_tokens(payload: Any) -> Any:
    """Return a copy of an OCPP payload with id tokens and secrets masked."""
    if isinstance(payload, dict):
        return {
            key: _mask_value(value) if key in _SECRET_KEYS else mask_tokens(value)
            for key, value in payload.items()
        }
    if isinstance(payload, list):
        return [mask_tokens(item) for item in payload]
    return payload


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return value[:2] + "***" if len(value) > 4 else "***"
    if isinstance(value, dict):
        return {
            key: _mask_value(item) if key in {"idToken", "idTag"} else item
            for key, item in value.items()
        }
    return "***"


def configure_logging(*, level: str = "INFO", log_format: LogFormat) -> None:
    """Set up structlog and route the standard library's records through it."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if log_format is LogFormat.JSON:
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        # Plain tracebacks: rich's would print local variables, secrets included.
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            exception_formatter=structlog.dev.plain_traceback,
        )

    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )

    # Third-party libraries log through the standard library; keep them quiet
    # unless they have something worse than INFO to say (the ocpp package logs
    # raw payloads, id tokens included, at INFO).
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    for noisy in ("websockets", "uvicorn.access", "ocpp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
