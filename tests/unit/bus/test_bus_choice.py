"""Choosing a transport from a URL, and which subjects every transport carries."""

from __future__ import annotations

import pytest

from csms.bus import InProcessBus, NatsBus, RedisBus, connect_bus, validate_subject


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (None, InProcessBus),
        ("memory://", InProcessBus),
        ("redis://127.0.0.1:6379/0", RedisBus),
        ("rediss://bus.example:6380/1", RedisBus),
        ("nats://127.0.0.1:4222", NatsBus),
        ("NATS://127.0.0.1:4222", NatsBus),
    ],
)
def test_the_url_scheme_chooses_the_transport(url: str | None, kind: type) -> None:
    bus = connect_bus(url)

    assert isinstance(bus, kind)


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="kafka"):
        connect_bus("kafka://127.0.0.1:9092")


def test_the_client_name_prefixes_the_connections_name() -> None:
    bus = connect_bus("redis://127.0.0.1:6379/0", client_name="gateway-7")

    assert isinstance(bus, RedisBus)
    assert bus.client_name.startswith("gateway-7-")


def test_the_logged_address_carries_no_password() -> None:
    bus = RedisBus("redis://:s3cret@127.0.0.1:6379/2")

    assert bus.display_url == "redis://127.0.0.1:6379/2"


@pytest.mark.parametrize(
    "subject",
    ["csms.events", "csms.gateway.gw-01.call", "a", "A_b-9.c"],
)
def test_dotted_subjects_are_accepted(subject: str) -> None:
    assert validate_subject(subject) == subject


@pytest.mark.parametrize(
    "subject",
    [
        "",
        "csms..events",
        ".csms",
        "csms.",
        "csms.*",
        "csms.>",
        "csms events",
        "csms.gateway.é",
        "_csms.reply.1",
        "a" * 201,
    ],
)
def test_subjects_a_transport_could_misread_are_refused(subject: str) -> None:
    with pytest.raises(ValueError, match="Invalid bus subject"):
        validate_subject(subject)
