"""How ``csms serve --gateways N`` shares the database pool among its gateways."""

from __future__ import annotations

import pytest

from csms.settings import Settings
from csms.supervisor import gateway_pool


@pytest.mark.parametrize("gateways", [1, 2, 6, 12])
def test_the_gateways_together_stay_within_the_configured_pool(gateways: int) -> None:
    settings = Settings(database_pool_size=12, database_max_overflow=6)

    size, overflow = gateway_pool(settings, gateways)

    assert size >= 2
    # Rounded up per gateway, never more than one extra connection each.
    assert size * gateways <= max(12, 2 * gateways) + gateways
    assert overflow * gateways <= 6 + gateways


def test_six_gateways_of_the_default_pool_fit_postgresqls_default_limit() -> None:
    settings = Settings()

    size, overflow = gateway_pool(settings, 6)

    # The parent (api and worker) keeps its own full pool beside them.
    parent = settings.database_pool_size + settings.database_max_overflow
    assert 6 * (size + overflow) + parent < 100
