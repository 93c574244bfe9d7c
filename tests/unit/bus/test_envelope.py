"""The Redis request/reply envelopes: round trips and what is refused."""

from __future__ import annotations

import pytest

from csms.bus.base import Answer
from csms.bus.envelope import (
    EnvelopeError,
    encode_reply,
    encode_request,
    parse_reply,
    parse_request,
)


def test_a_request_survives_its_envelope() -> None:
    envelope = encode_request(
        reply_to="_csms.reply.0a1b", correlation_id=2**64 - 1, payload=b"\x00{}\xff"
    )

    request = parse_request(envelope)

    assert request.reply_to == "_csms.reply.0a1b"
    assert request.correlation_id == 2**64 - 1
    assert request.payload == b"\x00{}\xff"


def test_a_request_envelope_costs_ten_bytes_plus_the_reply_channel() -> None:
    envelope = encode_request(reply_to="r", correlation_id=7, payload=b"data")

    assert envelope == b"\x01\x01r" + (7).to_bytes(8, "big") + b"data"


@pytest.mark.parametrize("ok", [True, False])
def test_a_reply_survives_its_envelope(ok: bool) -> None:
    envelope = encode_reply(correlation_id=42, answer=Answer(ok=ok, body=b"body"))

    reply = parse_reply(envelope)

    assert reply.correlation_id == 42
    assert reply.answer == Answer(ok=ok, body=b"body")


def test_an_empty_payload_is_kept_empty() -> None:
    request = parse_request(encode_request(reply_to="r", correlation_id=1, payload=b""))
    reply = parse_reply(
        encode_reply(correlation_id=1, answer=Answer(ok=True, body=b""))
    )

    assert request.payload == b""
    assert reply.answer.body == b""


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"plain event",
        b"\x01",
        b"\x01\x05abc",  # reply channel cut short
        b"\x01\x01r\x00\x00",  # correlation id cut short
        b"\x01\x02\xff\xfe" + bytes(8),  # reply channel not ASCII
        b"\x02" + bytes(8),  # a reply, not a request
    ],
)
def test_what_is_not_a_request_envelope_is_refused(data: bytes) -> None:
    with pytest.raises(EnvelopeError):
        parse_request(data)


@pytest.mark.parametrize(
    "data", [b"", b"\x02\x00", b"\x01" + bytes(8), b"\x04" + bytes(8)]
)
def test_what_is_not_a_reply_envelope_is_refused(data: bytes) -> None:
    with pytest.raises(EnvelopeError):
        parse_reply(data)


def test_a_reply_channel_longer_than_255_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="255"):
        encode_request(reply_to="r" * 256, correlation_id=1, payload=b"")
