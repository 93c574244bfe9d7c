"""Customer endpoints: registration, login, profile, id tokens, cars."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["customers"])
