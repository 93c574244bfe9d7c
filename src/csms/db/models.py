"""Imports every model so that the metadata is complete (for Alembic)."""

from csms.charging.journal import TransactionMessage
from csms.charging.models import ChargeDetailRecord
from csms.customers.models import Car, Customer, IdToken
from csms.db.base import Base
from csms.operators.models import Operator
from csms.stations.models import Connector, Station, StationEvent

__all__ = [
    "Base",
    "Car",
    "ChargeDetailRecord",
    "Connector",
    "Customer",
    "IdToken",
    "Operator",
    "Station",
    "StationEvent",
    "TransactionMessage",
]
