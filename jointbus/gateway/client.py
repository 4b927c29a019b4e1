"""A small Python client of the gateway's HTTP API (what the demo's gateway agency, the
tests and the benchmark use; other languages generate theirs from the OpenAPI document)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Self

import httpx

from jointbus.gateway.errors import GatewayError


class GatewayClient:
    """Calls one agency's gateway as one internal system (its bearer token)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 60.0) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        answer = await self.http.request(method, path, **kw)
        if answer.is_success:
            return answer.json()
        raise problem_of(answer)

    async def publish(
        self,
        type_: str,
        to: list[str],
        data: dict[str, Any],
        *,
        subject: str | None = None,
        causation: str | None = None,
        correlation: str | None = None,
        idempotency_key: str | None = None,
        wait: float = 0,
    ) -> dict[str, Any]:
        """POST /v1/events: the event's status once the broker has it (and, with ``wait``,
        once the router decided)."""
        body = {"type": type_, "to": to, "data": data, "subject": subject}
        body |= {"causation": causation, "correlation": correlation}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        params = {"wait": wait} if wait else {}
        sent = {k: v for k, v in body.items() if v is not None}
        result: dict[str, Any] = await self._call(
            "POST", "/v1/events", json=sent, headers=headers, params=params
        )
        return result

    async def forward(self, wire: bytes) -> dict[str, Any]:
        """POST /v1/envelopes: a pre-signed envelope, verified and sent unchanged."""
        headers = {"content-type": "application/cloudevents+json"}
        result: dict[str, Any] = await self._call("POST", "/v1/envelopes", content=wire, headers=headers)
        return result

    async def propose(self, changes: list[dict[str, Any]], reason: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "POST", "/v1/governance/proposals", json={"changes": changes, "reason": reason}
        )
        return result

    async def event(self, event_id: str, *, wait: float = 0) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/v1/events/{event_id}", params={"wait": wait})
        return result

    async def inbox(self, after: int = 0, limit: int = 100) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/v1/inbox", params={"after": after, "limit": limit})
        return result

    async def inbox_item(self, event_id: str) -> dict[str, Any]:
        """GET /v1/inbox/{id}: one delivery (404 ``not_found`` until the gateway stored it)."""
        result: dict[str, Any] = await self._call("GET", f"/v1/inbox/{event_id}")
        return result

    async def ack(self, event_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/v1/inbox/{event_id}/ack")
        return result

    async def aggregate(self, path: str, ident: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/v1/{path}/{ident}")
        return result

    async def registry(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/v1/registry")
        return result

    async def stream(self, *, last_event_id: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """GET /v1/inbox/stream: each delivery as it arrives (resuming after ``last_event_id``)."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        async with self.http.stream("GET", "/v1/inbox/stream", headers=headers, timeout=None) as answer:
            if not answer.is_success:
                await answer.aread()
                raise problem_of(answer)
            async for event in sse_events(answer.aiter_lines()):
                if event.get("event") == "delivery":
                    item: dict[str, Any] = json.loads(event["data"])
                    yield item


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, str]]:
    """Server-Sent Events from a text stream's lines (fields joined; comments skipped)."""
    event: dict[str, str] = {}
    async for line in lines:
        if not line:
            if "data" in event:
                yield event
            event = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        event[name] = f"{event[name]}\n{value}" if name == "data" and name in event else value


def problem_of(answer: httpx.Response) -> GatewayError:
    """The gateway's Problem answer as a typed error (its reason code and status)."""
    try:
        body = answer.json()
        return GatewayError(
            str(body["detail"]),
            reason=str(body["reason"]),
            status=answer.status_code,
            field=body.get("field"),
            retriable=bool(body.get("retriable", False)),
        )
    except (ValueError, KeyError, TypeError):
        return GatewayError(f"HTTP {answer.status_code}", reason="http_error", status=answer.status_code)
