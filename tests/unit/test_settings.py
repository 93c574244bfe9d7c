"""Settings read from the environment."""

from __future__ import annotations

from datetime import timedelta

import pytest

from csms.settings import Settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("180", timedelta(seconds=180)),
        ("2.5", timedelta(seconds=2.5)),
        ("PT3M", timedelta(minutes=3)),
    ],
)
def test_durations_read_seconds_or_iso_8601(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: timedelta
) -> None:
    monkeypatch.setenv("CSMS_PING_TIMEOUT", text)

    assert Settings().ping_timeout == expected


def test_a_duration_that_is_neither_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSMS_PING_TIMEOUT", "soon")

    with pytest.raises(ValueError, match="ping_timeout"):
        Settings()
