"""The gateway's HTTP API (FastAPI): routes, bearer-token access, limits, and one error shape.

FastAPI is used because the OpenAPI document is generated from the same pydantic models
that validate each request and answer, so the document cannot drift from the code; it also
brings Server-Sent Events and request-body limits. Every refusal is a ``Problem`` with a
stable reason code; nothing a caller sends yields a 500.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jointbus.gateway import models
from jointbus.gateway.errors import GatewayError, not_found
from jointbus.gateway.service import AGGREGATE_PATHS, Gateway
from jointbus.gateway.service import inbox_item as item_of
from jointbus.gateway.tokens import Caller, Tokens
from jointbus.schemas.catalog import CURRENT

log = structlog.get_logger("jointbus.gateway.http")

#: a request body larger than this is refused (413) before it is read to its end; the bus
#: itself carries envelopes of at most 256 KiB
MAX_BODY = 1024 * 1024
PROBLEM = {"model": models.Problem}
ANSWERS: dict[int | str, dict[str, Any]] = {
    401: PROBLEM, 403: PROBLEM, 413: PROBLEM, 422: PROBLEM, 429: PROBLEM, 503: PROBLEM,
}  # fmt: skip
#: cursors are SQLite integers; a larger ``after`` is refused, not overflowed
MAX_CURSOR = 2**63 - 1
#: event streams one internal system may hold open at once
MAX_STREAMS = 8
STATUS_REASONS = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


@dataclass
class RateLimit:
    """A token bucket per internal system: ``rate`` requests a second, bursts of ``burst``."""

    rate: float = 50.0
    burst: float = 100.0
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, who: str) -> float:
        """0 when ``who`` may go on; otherwise the seconds until it may."""
        now = time.monotonic()
        level, then = self.buckets.get(who, (self.burst, now))
        level = min(self.burst, level + (now - then) * self.rate)
        if level < 1.0:
            self.buckets[who] = (level, now)
            return (1.0 - level) / self.rate
        self.buckets[who] = (level - 1.0, now)
        return 0.0


@dataclass
class Runtime:
    """What the routes use: the gateway itself, the tokens, the limits."""

    gateway: Gateway
    tokens: Tokens
    limit: RateLimit
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    #: open event streams per system
    streams: Counter[str] = field(default_factory=Counter)


bearer = HTTPBearer(auto_error=False, description="a token from `jointbus gateway token add NAME`")


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def needs(scope: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the calling system (authenticated by ``AuthGate`` before its body was
    read), which must hold a token with ``scope``. Declares the bearer scheme for OpenAPI."""

    async def caller(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        who: Caller = request.scope["state"]["system"]
        if scope not in who.scopes:
            raise GatewayError(
                f"{who.name} may not {scope} (its scopes: {', '.join(sorted(who.scopes))})",
                reason="forbidden",
                status=403,
            )
        return who

    return caller


class AuthGate:
    """Every ``/v1/`` call but the health check needs a valid token, checked before the
    body is read, and stays within its system's request rate (429 otherwise)."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app, self.rt = app, runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/") or scope["path"] == "/v1/health":
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        kind, _, token = header.partition(" ")
        who = self.rt.tokens.authenticate(token.strip()) if kind.lower() == "bearer" and token else None
        if who is None:
            detail = "a bearer token is required" if not token else "the token is not one of this gateway's"
            await problem(401, "unauthenticated", detail)(scope, receive, send)
            return
        scope.setdefault("state", {}).update(caller=who.name, system=who)
        wait = self.rt.limit.take(who.name)
        if wait:
            detail = f"{who.name} is over its request rate; retry in {wait:.2f} s"
            await problem(429, "rate_limited", detail, retriable=True, retry_after=math.ceil(wait))(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


Publisher_ = Annotated[Caller, Depends(needs("publish"))]
Inbox_ = Annotated[Caller, Depends(needs("inbox"))]
Reader_ = Annotated[Caller, Depends(needs("read"))]
EventIdPath = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]


async def stream_slot(request: Request, caller: Inbox_) -> AsyncIterator[Caller]:
    """One of the ``MAX_STREAMS`` event streams a system may hold open (429 beyond)."""
    streams = runtime(request).streams
    if streams[caller.name] >= MAX_STREAMS:
        raise GatewayError(
            f"{caller.name} already holds {MAX_STREAMS} open event streams",
            reason="too_many_streams",
            status=429,
            retriable=True,
        )
    streams[caller.name] += 1
    try:
        yield caller
    finally:
        streams[caller.name] -= 1


StreamSlot_ = Annotated[Caller, Depends(stream_slot)]


def problem(
    status: int,
    reason: str,
    detail: str,
    *,
    field: str | None = None,
    retriable: bool = False,
    retry_after: int = 1,
) -> JSONResponse:
    """The one error answer: a ``Problem`` body, and the headers its status calls for."""
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status in (429, 503):
        headers["Retry-After"] = str(retry_after)
    body = models.Problem(reason=reason, detail=detail, field=field, retriable=retriable)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


class BodyLimit:
    """Refuses a request body over ``MAX_BODY`` with a 413 Problem: at once when its
    Content-Length says so, else as soon as the bytes read pass the limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > MAX_BODY:
                await too_large(int(declared))(scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server reads no more than it declares
            return
        chunks, size = [], 0  # no length declared (chunked): read it here, up to the limit
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > MAX_BODY:
                await too_large(size)(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def too_large_error(size: int) -> GatewayError:
    return GatewayError(
        f"the request body is {size} bytes or more; this gateway accepts at most {MAX_BODY}",
        reason="too_large",
        status=413,
    )


def too_large(size: int) -> JSONResponse:
    error = too_large_error(size)
    return problem(error.status, error.reason, error.message)


class AccessLog:
    """Logs every call with the calling system, its status and its duration (pure ASGI, so
    event streams pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began, status = time.monotonic(), 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            log.info(
                "call",
                method=scope["method"],
                path=scope["path"],
                status=status,
                caller=scope.get("state", {}).get("caller"),
                ms=round((time.monotonic() - began) * 1000, 1),
            )


def create_app(rt: Runtime | None = None) -> FastAPI:
    """The gateway's application; without a runtime it serves nothing but its OpenAPI document."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        if rt is not None:
            await rt.gateway.start()
            tasks = [asyncio.create_task(job()) for job in rt.background]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if rt is not None:
                await rt.gateway.stop()

    app = FastAPI(
        title="jointbus agency gateway",
        version="1",
        description=(
            "One gateway per agency: internal systems publish and read the agency's signed, "
            "end-to-end encrypted events over plain HTTP/JSON. Every refusal is a Problem "
            "with a stable reason code."
        ),
        lifespan=lifespan,
        responses=ANSWERS,
        docs_url=None,  # the document is docs/gateway-openapi.json; no page loading scripts from a CDN
        redoc_url=None,
    )
    app.state.runtime = rt
    app.add_middleware(BodyLimit)
    if rt is not None:
        app.add_middleware(AuthGate, runtime=rt)
    app.add_middleware(AccessLog)
    app.openapi = lambda: openapi_31(app)  # type: ignore[method-assign]
    _handlers(app)
    _routes(app)
    return app


def openapi_31(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, kept to OpenAPI 3.1 (which validators and generators read): the
    event stream's 3.2 ``itemSchema`` becomes a described string schema."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for item in doc["paths"].values():
            for operation in item.values():
                for answer in operation.get("responses", {}).values():
                    stream = answer.get("content", {}).get("text/event-stream")
                    if stream is not None and "itemSchema" in stream:
                        del stream["itemSchema"]
                        stream["schema"] = {
                            "type": "string",
                            "description": "Server-Sent Events `delivery`: `id` is the cursor, "
                            "`data` an InboxItem as JSON",
                        }
        app.openapi_schema = doc
    return app.openapi_schema


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def gateway_error(_: Request, exc: GatewayError) -> JSONResponse:
        return problem(exc.status, exc.reason, exc.message, field=exc.field, retriable=exc.retriable)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first: dict[str, Any] = dict(errors[0]) if errors else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            return problem(422, "schema", f"the body is not JSON: {first.get('ctx', {}).get('error', '')}")
        where = ".".join(str(p) for p in first["loc"][1:]) or None
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in errors)
        return problem(422, "schema", detail or str(first["msg"]), field=where)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        reason = STATUS_REASONS.get(exc.status_code, "bad_request")
        return problem(exc.status_code, reason, str(exc.detail))


def _routes(app: FastAPI) -> None:
    @app.get("/v1/health", tags=["operations"])
    async def health(request: Request) -> models.Health:
        """Whether the gateway runs and reads its inbox (no token needed: for supervisors)."""
        gw = runtime(request).gateway
        return models.Health(
            agency=gw.agency,
            inbox_reader="running" if gw.reading else "stopped",
            registry_version=gw.publisher.registry.version,
        )

    @app.post("/v1/events", status_code=201, tags=["publish"])
    async def publish(
        request: Request,
        body: models.PublishRequest,
        caller: Publisher_,
        idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
        wait: Annotated[float, Query(ge=0, le=30, description="seconds to wait for the router")] = 0,
    ) -> models.EventStatus:
        """Validate, sign, seal (sensitive types) and publish; answers once the broker has it.

        The same ``Idempotency-Key`` with the same body answers the same event without
        publishing again; with another body it is a 409."""
        gw = runtime(request).gateway
        status = await gw.publish(caller, body, idempotency_key)
        return await gw.wait_decided(status.id, wait) if wait else status

    @app.post(
        "/v1/envelopes",
        status_code=201,
        tags=["publish"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "a signed envelope, exactly as docs/wire-format.md specifies",
                "content": {"application/cloudevents+json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def forward(request: Request, caller: Publisher_) -> models.EventStatus:
        """A pre-signed envelope (from the agency's own HSM): verified, then sent unchanged."""
        return await runtime(request).gateway.forward(caller, await request.body())

    @app.post("/v1/governance/proposals", status_code=201, tags=["publish"])
    async def propose(
        request: Request, body: models.ProposalRequest, caller: Publisher_
    ) -> models.EventStatus:
        """Propose a registry change to the other members (signed at the gateway's clock)."""
        return await runtime(request).gateway.propose(caller, body)

    @app.get("/v1/events/{event_id}", tags=["publish"])
    async def event(
        request: Request,
        event_id: EventIdPath,
        _: Reader_,
        wait: Annotated[float, Query(ge=0, le=30, description="seconds to wait for the router")] = 0,
    ) -> models.EventStatus:
        """What became of an event published here: the router's decision (with the reason
        code of a rejection) and the recipients' receipts."""
        gw = runtime(request).gateway
        return await gw.wait_decided(event_id, wait) if wait else gw.status(event_id)

    @app.get("/v1/inbox", tags=["inbox"])
    async def inbox(
        request: Request,
        _: Inbox_,
        after: Annotated[int, Query(ge=0, le=MAX_CURSOR, description="the cursor of the last item read")] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> models.InboxPage:
        """Deliveries in order: verified, opened, each event once. The cursor is durable."""
        return runtime(request).gateway.inbox(after, limit)

    @app.get("/v1/inbox/stream", response_class=EventSourceResponse, tags=["inbox"])
    async def stream(
        request: Request,
        caller: StreamSlot_,
        after: Annotated[int, Query(ge=0, le=MAX_CURSOR)] = 0,
        last_event_id: Annotated[str | None, Header(description="resume after this SSE id")] = None,
    ) -> AsyncIterator[ServerSentEvent]:
        """Deliveries as Server-Sent Events (id: the cursor); a reconnecting client sends
        ``Last-Event-ID`` and misses nothing. The stream ends when its token is removed."""
        rt = runtime(request)
        resumed = last_event_id is not None and re.fullmatch(r"[0-9]{1,18}", last_event_id)
        start = int(last_event_id) if resumed and last_event_id else after
        token = request.headers.get("authorization", "").partition(" ")[2].strip()

        def still_held() -> bool:
            return rt.tokens.authenticate(token) is not None

        async for item in rt.gateway.follow(start, still_held):
            yield ServerSentEvent(data=item.model_dump(mode="json"), id=str(item.cursor), event="delivery")

    @app.get("/v1/inbox/{event_id}", tags=["inbox"])
    async def inbox_item(request: Request, event_id: EventIdPath, _: Inbox_) -> models.InboxItem:
        """One delivery by its event id."""
        row = runtime(request).gateway.store.inbox_item(event_id)
        if row is None:
            raise not_found(f"delivery {event_id}")
        return item_of(row)

    @app.post("/v1/inbox/{event_id}/ack", tags=["inbox"])
    async def ack(request: Request, event_id: EventIdPath, caller: Inbox_) -> models.AckAnswer:
        """The internal system has the delivery: the signed receipt goes to its sender now
        (once; a repeated acknowledgement answers the same receipt)."""
        return await runtime(request).gateway.ack(caller, event_id)

    def aggregate_route(path: str) -> None:
        async def read(
            request: Request, ident: Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,80}$")], caller: Reader_
        ) -> models.AggregateView:
            return runtime(request).gateway.aggregate(path, ident, contents="inbox" in caller.scopes)

        read.__doc__ = f"A {AGGREGATE_PATHS[path]}'s state and history, as this agency saw it."
        app.get(f"/v1/{path}/{{ident}}", tags=["aggregates"], name=f"read_{path}")(read)

    for path in AGGREGATE_PATHS:
        aggregate_route(path)

    @app.get("/v1/registry", tags=["aggregates"])
    async def registry(request: Request, _: Reader_) -> models.RegistryInfo:
        """The registry version in force: the members (Chinese and English names), the chair."""
        return await runtime(request).gateway.registry_info()

    @app.get("/v1/catalog", tags=["publish"])
    async def catalog(_: Reader_) -> dict[str, dict[str, Any]]:
        """The types agencies publish: each family's current type, whether it travels
        sealed, and its payload's JSON Schema."""
        return {
            family: {"type": spec.type, "sensitive": spec.sensitive, "schema": spec.model.model_json_schema()}
            for family, spec in sorted(CURRENT.items())
            if "agency" in spec.publishers
        }
