"""The message bus between the roles of a CSMS (gateways, api, worker).

Two patterns over dot-separated subjects (``csms.events``,
``csms.gateway.<gateway-id>.call``):

- fan-out: :meth:`Bus.publish` reaches every current subscriber, in every
  process;
- request/reply: :meth:`Bus.request` reaches the process that serves a subject
  and waits for its answer.

Three transports share one interface: :class:`InProcessBus` (one process, the
default), :class:`RedisBus` and :class:`NatsBus`. :func:`connect_bus` picks one
from a URL. Delivery is at most once; see docs/bus.md.

Errors::

    BusError
     ├── BusUnavailable    the broker cannot be reached (or the bus is closed);
     │                     nothing was sent
     ├── NoResponders      nobody serves the subject; the request was not delivered
     ├── BusTimeout        no answer in time; the request may have been handled
     ├── ResponderFailed   delivered, and the responder raised
     └── ResponderBusy     delivered, and refused unhandled: the responder had
                           ``max_in_flight`` requests in progress

A subject that is not dot-separated tokens of ``[A-Za-z0-9_-]`` raises
ValueError: that is a bug of the caller, not a bus failure.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from csms.bus.base import (
    DEFAULT_MAX_IN_FLIGHT,
    Bus,
    BusError,
    BusTimeout,
    BusUnavailable,
    Handler,
    NoResponders,
    Responder,
    ResponderBusy,
    ResponderFailed,
    Subscription,
    validate_subject,
)
from csms.bus.memory import InProcessBus
from csms.bus.nats_bus import NatsBus
from csms.bus.redis_bus import RedisBus

__all__ = [
    "Bus",
    "BusError",
    "BusTimeout",
    "BusUnavailable",
    "Handler",
    "InProcessBus",
    "NatsBus",
    "NoResponders",
    "RedisBus",
    "Responder",
    "ResponderBusy",
    "ResponderFailed",
    "Subscription",
    "connect_bus",
    "validate_subject",
]

MEMORY_SCHEMES = frozenset({"memory"})
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
NATS_SCHEMES = frozenset({"nats", "tls"})


def connect_bus(
    url: str | None,
    *,
    client_name: str = "csms",
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> Bus:
    """Build the bus a URL names; it connects on ``start()``.

    ``None`` or ``memory://`` is the in-process bus; ``redis://host:port/db``
    (or ``rediss://``, ``unix://``) Redis; ``nats://host:port`` (or
    ``tls://``) NATS. ``client_name`` (the process's role, say) prefixes the
    name its connections show on the broker. A responder with
    ``max_in_flight`` requests in progress refuses more (``ResponderBusy``).
    """
    scheme = "memory" if url is None else urlsplit(url).scheme.lower()
    if scheme in MEMORY_SCHEMES:
        return InProcessBus(max_in_flight=max_in_flight)
    assert url is not None
    if scheme in REDIS_SCHEMES:
        return RedisBus(url, client_name=client_name, max_in_flight=max_in_flight)
    if scheme in NATS_SCHEMES:
        return NatsBus(url, client_name=client_name, max_in_flight=max_in_flight)
    raise ValueError(
        f"Unknown bus URL scheme {scheme!r}: use memory://, redis:// or nats://."
    )
