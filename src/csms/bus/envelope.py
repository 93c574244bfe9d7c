"""The binary envelopes of request/reply over Redis pub/sub (no I/O here).

Redis has no reply subjects, so a request carries where to answer::

    request: 0x01 | reply-channel length (1 byte) | reply channel (ASCII)
             | correlation id (8 bytes, big-endian) | payload
    reply:   0x02 (answered) or 0x03 (responder failed)
             | correlation id (8 bytes, big-endian) | payload

A failed reply's payload is the name of the exception the responder raised. The
payload itself is opaque bytes, never copied into text or JSON.

No deadline travels here: what needs one carries it in its payload (the
gateway's calls, ``csms.cluster``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from csms.bus.base import Answer

REQUEST = 0x01
ANSWERED = 0x02
FAILED = 0x03
MAX_CORRELATION_ID = 2**64 - 1
MAX_REPLY_TO_LENGTH = 255

_REQUEST_HEAD = struct.Struct(">BB")
_CORRELATION = struct.Struct(">Q")
_REPLY_HEAD = struct.Struct(">BQ")


class EnvelopeError(ValueError):
    """Bytes that are not an envelope of ours (another program on our channel?)."""


@dataclass(frozen=True, slots=True)
class Request:
    reply_to: str
    correlation_id: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Reply:
    correlation_id: int
    answer: Answer


def encode_request(*, reply_to: str, correlation_id: int, payload: bytes) -> bytes:
    channel = reply_to.encode("ascii")
    if len(channel) > MAX_REPLY_TO_LENGTH:
        raise ValueError(f"Reply channel longer than {MAX_REPLY_TO_LENGTH} bytes.")
    return b"".join(
        (
            _REQUEST_HEAD.pack(REQUEST, len(channel)),
            channel,
            _CORRELATION.pack(correlation_id),
            payload,
        )
    )


def parse_request(data: bytes) -> Request:
    if len(data) < _REQUEST_HEAD.size or data[0] != REQUEST:
        raise EnvelopeError("Not a request envelope.")
    _, length = _REQUEST_HEAD.unpack_from(data)
    start = _REQUEST_HEAD.size
    end = start + length
    if len(data) < end + _CORRELATION.size:
        raise EnvelopeError("Truncated request envelope.")
    try:
        reply_to = data[start:end].decode("ascii")
    except UnicodeDecodeError as exc:
        raise EnvelopeError("Reply channel is not ASCII.") from exc
    (correlation_id,) = _CORRELATION.unpack_from(data, end)
    return Request(
        reply_to=reply_to,
        correlation_id=correlation_id,
        payload=data[end + _CORRELATION.size :],
    )


def encode_reply(*, correlation_id: int, answer: Answer) -> bytes:
    kind = ANSWERED if answer.ok else FAILED
    return _REPLY_HEAD.pack(kind, correlation_id) + answer.body


def parse_reply(data: bytes) -> Reply:
    if len(data) < _REPLY_HEAD.size or data[0] not in (ANSWERED, FAILED):
        raise EnvelopeError("Not a reply envelope.")
    kind, correlation_id = _REPLY_HEAD.unpack_from(data)
    return Reply(
        correlation_id=correlation_id,
        answer=Answer(ok=kind == ANSWERED, body=data[_REPLY_HEAD.size :]),
    )
