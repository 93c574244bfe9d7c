"""The life of a Charge Detail Record.

Pending (start requested) → Started → Finished, or Pending → Failed.
"""

from __future__ import annotations

from enum import StrEnum


class CdrState(StrEnum):
    PENDING = "Pending"
    STARTED = "Started"
    FINISHED = "Finished"
    FAILED = "Failed"


ACTIVE_STATES = (CdrState.PENDING.value, CdrState.STARTED.value)

# Connector statuses in which a remote start may be sent: 1.6 "Preparing" is a
# car plugged in and waiting for authorisation.
FREE_CONNECTOR_STATUSES = frozenset({"Available", "Preparing"})
