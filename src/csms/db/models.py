"""Imports every model so that the metadata is complete (for Alembic)."""

from csms.db.base import Base
from csms.operators.models import Operator
from csms.stations.models import Connector, Station, StationEvent

__all__ = ["Base", "Connector", "Operator", "Station", "StationEvent"]
