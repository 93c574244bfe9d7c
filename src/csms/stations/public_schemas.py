"""What anyone may see of a station: where it is, its state, its connectors.

Nothing else — no vendor, firmware, credentials or events. The fields are
listed here one by one, so that a column added to ``Station`` never leaks into
the public API by itself.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from csms.stations.models import Station
from csms.stations.nearby import NearbyStation
from csms.stations.schemas import Location
from csms.stations.state import ConnectorStatus, StationState

DISTANCE_DECIMALS = 3  # metres


class PublicConnector(BaseModel):
    evse_id: int
    connector_id: int
    status: str = Field(description="The status the station last reported (OCPP).")

    @classmethod
    def from_status(cls, connector: ConnectorStatus) -> PublicConnector:
        return cls(
            evse_id=connector.evse_id,
            connector_id=connector.connector_id,
            status=connector.status,
        )


class PublicStation(BaseModel):
    id: str
    name: str | None
    location: Location | None
    state: StationState
    connectors: list[PublicConnector]

    @classmethod
    def from_station(cls, station: Station) -> PublicStation:
        location = None
        if station.latitude is not None and station.longitude is not None:
            location = Location(latitude=station.latitude, longitude=station.longitude)
        return cls(
            id=station.id,
            name=station.name,
            location=location,
            state=StationState(station.state),
            connectors=[
                PublicConnector(
                    evse_id=c.evse_id, connector_id=c.connector_id, status=c.status
                )
                for c in station.connectors
            ],
        )


class NearbyStationOut(BaseModel):
    id: str
    name: str | None
    location: Location
    distance_km: float = Field(
        description="Great-circle distance from the point asked, to the metre."
    )
    state: StationState
    connectors: list[PublicConnector]

    @classmethod
    def from_found(cls, found: NearbyStation) -> NearbyStationOut:
        return cls(
            id=found.station_id,
            name=found.name,
            location=Location(latitude=found.latitude, longitude=found.longitude),
            distance_km=round(found.distance_km, DISTANCE_DECIMALS),
            state=found.state,
            connectors=[PublicConnector.from_status(c) for c in found.connectors],
        )


class NearbyStations(BaseModel):
    items: list[NearbyStationOut] = Field(description="Nearest first.")
