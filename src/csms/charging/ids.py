"""Identifiers for Charge Detail Records and OCPP 1.6 transactions."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

# OCPP 1.6 transactionId is a JSON integer; stations commonly store it as a
# signed 32-bit value, so ids stay within it.
MAX_TRANSACTION_ID_16 = 2**31 - 1


def new_record_id(now: datetime) -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so newest-first is a keyset walk."""
    milliseconds = int(now.timestamp() * 1000)
    value = (milliseconds & ((1 << 48) - 1)) << 80
    value |= secrets.randbits(80)
    # Set the version (7) and the RFC variant bits.
    value &= ~(0xF << 76)
    value |= 0x7 << 76
    value &= ~(0x3 << 62)
    value |= 0x2 << 62
    return str(uuid.UUID(int=value))


def new_transaction_id_16() -> int:
    """A random 1.6 transaction id: one station's ids say nothing of another's."""
    return secrets.randbelow(MAX_TRANSACTION_ID_16) + 1


def new_remote_start_id() -> int:
    """2.0.1 remoteStartId: an integer the station echoes in its TransactionEvent."""
    return secrets.randbelow(MAX_TRANSACTION_ID_16) + 1
