"""Link and state changes of many stations share commits, and stale owners are
refused: the station writer, on both databases."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from csms.app import Csms
from csms.errors import StationNotFound
from csms.stations.bulk import StationImporter, StationRow
from csms.stations.models import Station
from csms.stations.service import BootInfo, StaleOwner
from csms.stations.state import StationState

from support.clock import ManualClock

FLEET = 300


async def _register_fleet(csms: Csms, count: int) -> list[str]:
    ids = [f"GC-{number:04d}" for number in range(count)]
    importer = StationImporter(csms.stations.sessionmaker, clock=csms.clock)
    await importer.import_rows(
        [
            StationRow(
                line=line,
                station_id=station_id,
                latitude=None,
                longitude=None,
                name=None,
                password=None,
            )
            for line, station_id in enumerate(ids, start=2)
        ]
    )
    return ids


async def test_a_connect_storm_is_stored_in_far_fewer_commits_than_changes(
    csms: Csms,
) -> None:
    ids = await _register_fleet(csms, FLEET)
    writer = csms.stations._writer
    commits_before = writer.commits

    outcomes = await asyncio.gather(
        *(
            csms.stations.mark_connected(station_id, ocpp_version="ocpp1.6")
            for station_id in ids
        )
    )
    boots = await asyncio.gather(
        *(
            csms.stations.accept_boot(
                station_id,
                BootInfo(
                    vendor="V", model="M", serial_number=None, firmware_version=None
                ),
                epoch=outcome.epoch,
            )
            for station_id, outcome in zip(ids, outcomes, strict=True)
        )
    )
    statuses = await asyncio.gather(
        *(
            csms.stations.update_connector(
                station_id,
                evse_id=1,
                connector_id=1,
                status="Available",
                epoch=outcome.epoch,
            )
            for station_id, outcome in zip(ids, outcomes, strict=True)
        )
    )

    commits = writer.commits - commits_before
    assert commits < len(ids), f"{commits} commits for {3 * len(ids)} changes"
    assert all(boot.booted for boot in boots)
    assert {status.state for status in statuses} == {StationState.AVAILABLE}
    stored = await csms.stations.list_stations(limit=FLEET + 1)
    assert len(stored) == FLEET
    assert all(station.online for station in stored)
    assert {station.state for station in stored} == {"Available"}
    assert all(station.owner == "local" for station in stored)
    assert {station.owner_epoch for station in stored} == {outcomes[0].epoch}


async def test_each_new_link_gets_a_higher_epoch_and_fences_the_older_one(
    csms: Csms,
) -> None:
    [station_id] = await _register_fleet(csms, 1)
    first = await csms.stations.mark_connected(
        station_id, ocpp_version="ocpp1.6", gateway="gw-a"
    )
    second = await csms.stations.mark_connected(
        station_id, ocpp_version="ocpp2.0.1", gateway="gw-b"
    )

    assert second.epoch == first.epoch + 1
    with pytest.raises(StaleOwner):
        await csms.stations.update_connector(
            station_id,
            evse_id=1,
            connector_id=1,
            status="Faulted",
            epoch=first.epoch,
        )
    with pytest.raises(StaleOwner):
        await csms.stations.mark_offline(station_id, epoch=first.epoch)
    station = await csms.stations.get(station_id)
    assert station.online, "a stale link's close must not take the station offline"
    assert station.owner == "gw-b"
    assert station.connectors == []


async def test_one_failing_change_does_not_fail_the_rest_of_its_batch(
    csms: Csms,
) -> None:
    ids = await _register_fleet(csms, 20)

    def broken(_session: AsyncSession, _station: Station, _now: object) -> None:
        raise RuntimeError("a bug in one change")

    results = await asyncio.gather(
        csms.stations._writer.submit(ids[0], broken),
        csms.stations.mark_connected("NO-SUCH-STATION", ocpp_version="ocpp1.6"),
        *(
            csms.stations.mark_connected(station_id, ocpp_version="ocpp1.6")
            for station_id in ids[1:]
        ),
        return_exceptions=True,
    )

    assert isinstance(results[0], RuntimeError)
    assert isinstance(results[1], StationNotFound)
    assert not any(isinstance(result, BaseException) for result in results[2:])
    stored = {s.id: s for s in await csms.stations.list_stations(limit=100)}
    assert not stored[ids[0]].online
    assert all(stored[station_id].online for station_id in ids[1:])


async def test_a_gateway_whose_lease_lapsed_has_its_stations_released(
    csms: Csms, clock: ManualClock
) -> None:
    ids = await _register_fleet(csms, 4)
    for station_id in ids[:2]:
        await csms.stations.mark_connected(
            station_id, ocpp_version="ocpp1.6", gateway="gw-dead"
        )
    for station_id in ids[2:]:
        await csms.stations.mark_connected(
            station_id, ocpp_version="ocpp1.6", gateway="gw-alive"
        )
    await csms.stations.renew_gateway_lease("gw-dead", started=True)
    clock.advance(seconds=120)
    await csms.stations.renew_gateway_lease("gw-alive", started=True)

    released = await csms.stations.release_lapsed_gateways(
        lapse=csms.settings.gateway_lease_lapse
    )

    assert released == 2
    stored = {s.id: s for s in await csms.stations.list_stations(limit=10)}
    assert [stored[i].online for i in ids] == [False, False, True, True]
    assert (
        await csms.stations.release_lapsed_gateways(
            lapse=csms.settings.gateway_lease_lapse
        )
        == 0
    )
