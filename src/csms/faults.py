"""Crash points for the fault tests: the process dies on the spot just before or
just after the commit of one kind of transaction message.

Why it exists: the charging guarantee (acknowledged means stored, and a retry
finds what it repeats) has two edges that a SIGKILL at a random moment seldom
hits. A crash before the commit stores nothing and answers nothing: the
station's resend must be applied. A crash after the commit stores the message
but answers nothing: the resend must be journaled as a duplicate, not applied
twice. ``CSMS_CRASH_AT`` lets a test put the crash exactly there:

    CSMS_CRASH_AT=before_commit:StopTransaction
    CSMS_CRASH_AT=after_commit:TransactionEvent

It is read once, at import, and ignored (with a warning) when
``CSMS_ENVIRONMENT`` is ``production``. A value that is not of that form
refuses to import: a misspelt crash point would otherwise never fire.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import structlog

from csms.settings import Environment

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.faults")

CRASH_AT_VARIABLE = "CSMS_CRASH_AT"
# EX_SOFTWARE from sysexits.h: what a test expects of a process it crashed.
CRASH_EXIT_CODE = 70
STAGES = ("before_commit", "after_commit")

Stage = Literal["before_commit", "after_commit"]


@dataclass(frozen=True, slots=True)
class CrashPoint:
    """Where the process dies: a stage around the commit of one OCPP action."""

    stage: str
    action: str

    @classmethod
    def parse(cls, value: str) -> CrashPoint:
        """``"<before|after>_commit:<Action>"``; ValueError for anything else."""
        stage, separator, action = value.strip().partition(":")
        if not separator or stage not in STAGES or not action:
            raise ValueError(
                f"{CRASH_AT_VARIABLE}={value!r}: expected "
                "'before_commit:<Action>' or 'after_commit:<Action>'"
            )
        return cls(stage=stage, action=action)

    def matches(self, stage: str, action: str) -> bool:
        return self.stage == stage and self.action == action


def read_crash_point(environ: Mapping[str, str]) -> CrashPoint | None:
    """The crash point the environment asks for, or None (always in production)."""
    value = environ.get(CRASH_AT_VARIABLE, "")
    if not value:
        return None
    environment = environ.get("CSMS_ENVIRONMENT", "").strip().lower()
    if environment == Environment.PRODUCTION.value:
        logger.warning("faults.crash_point.ignored_in_production", crash_at=value)
        return None
    return CrashPoint.parse(value)


_CONFIGURED = read_crash_point(os.environ)


def crash_point(stage: Stage, action: str) -> None:
    """Exit at once with ``CRASH_EXIT_CODE`` if this is the configured crash point.

    ``os._exit``: no cleanup, no rollback, no answer to the station, as a power
    loss would leave it. Without a configured point this does nothing.
    """
    if _CONFIGURED is None or not _CONFIGURED.matches(stage, action):
        return
    logger.warning("faults.crash_point.reached", stage=stage, action=action)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(CRASH_EXIT_CODE)
