"""What customers may see of stations: live state near a point, nothing more."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/stations", tags=["stations"])
