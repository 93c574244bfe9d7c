"""Charging sessions and Charge Detail Records over HTTP."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["charging"])
