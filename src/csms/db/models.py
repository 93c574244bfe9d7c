"""Imports every model so that the metadata is complete (for Alembic)."""

from csms.charging.journal import TransactionMessage
from csms.charging.models import (
    ActiveCharge,
    ChargeDetailRecord,
    IdempotencyKey,
    MeterSample,
    TransactionKey,
)
from csms.customers.models import Car, Customer, IdToken
from csms.db.base import Base
from csms.operators.models import Operator
from csms.stations.models import Connector, GatewayLease, Station, StationEvent

__all__ = [
    "ActiveCharge",
    "Base",
    "Car",
    "ChargeDetailRecord",
    "Connector",
    "Customer",
    "GatewayLease",
    "IdToken",
    "IdempotencyKey",
    "MeterSample",
    "Operator",
    "Station",
    "StationEvent",
    "TransactionKey",
    "TransactionMessage",
]
