"""A customer driving the HTTP API: register, log in, add a car."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Customer:
    http: httpx.AsyncClient
    customer_id: int
    email: str
    headers: dict[str, str]
    id_token: str

    async def add_car(self, plate: str = "B-EV 1", **fields: Any) -> int:
        body = {"make": "Renault", "model": "Zoe", "plate": plate, **fields}
        answer = await self.http.post("/api/v1/cars", json=body, headers=self.headers)
        assert answer.status_code == 201, answer.text
        return int(answer.json()["id"])

    async def get(self, path: str, **options: Any) -> httpx.Response:
        return await self.http.get(path, headers=self.headers, **options)

    async def post(self, path: str, **options: Any) -> httpx.Response:
        headers = {**self.headers, **options.pop("headers", {})}
        return await self.http.post(path, headers=headers, **options)


async def register_customer(
    http: httpx.AsyncClient, email: str = "driver@example.com"
) -> Customer:
    password = "correct horse battery"
    answer = await http.post(
        "/api/v1/customers",
        json={"email": email, "password": password, "name": "Dana Driver"},
    )
    assert answer.status_code == 201, answer.text
    customer_id = int(answer.json()["id"])
    login = await http.post(
        "/api/v1/auth/token", data={"username": email, "password": password}
    )
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    tokens = await http.get("/api/v1/id-tokens", headers=headers)
    assert tokens.status_code == 200, tokens.text
    return Customer(http, customer_id, email, headers, tokens.json()[0]["value"])
