"""The console's web application: server-rendered pages, their JSON and live updates.

Read-only: every route reads the console's model of the audit log (``state.LogState``),
the checkpoint topics or the local proof index; the one POST starts a verification job,
which reads the log like ``jointbus audit verify`` and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import structlog
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from jointbus.auditcli import build_proof
from jointbus.console import figures
from jointbus.console.labels import language, translator
from jointbus.console.reading import checkpoints, follow
from jointbus.console.state import WHOLE, Entry, LogState
from jointbus.console.verifyjob import Verifications
from jointbus.schemas.errors import JointbusError
from jointbus.schemas.ids import parse_time, utcnow
from jointbus.schemas.registry import Registry
from jointbus.streams.settings import Settings
from jointbus.views import GROUPS

log = structlog.get_logger(__name__)
HERE = Path(__file__).parent
#: the charting library, fetched at build time (``make charts``); pages say so when absent
ECHARTS = HERE / "static" / "vendor" / "echarts.min.js"
#: the collaboration's figures in URLs (``/figure/_all/<column>``)
ALL = "_all"
#: pause after the log grew before the live figures are sent (a burst is sent once)
SETTLE_SECONDS = 0.3
#: a live stream says it is alive at least this often
KEEPALIVE_SECONDS = 15.0
#: no script from anywhere but the console itself; ECharts sets inline styles
POLICY = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"


def create_app(
    cfg: Settings,
    registry: Registry,
    state: LogState,
    *,
    hosts: frozenset[str],
    clock: Callable[[], datetime] = utcnow,
    follow_log: bool = True,
) -> FastAPI:
    """The console over ``state`` (already caught up with the topic); with ``follow_log``
    it keeps folding the records the router appends while it serves. It answers only
    requests whose ``Host`` is one of ``hosts`` (:func:`allowed_hosts`): a page of another
    name that resolves to the console (DNS rebinding) gets 421 on every route."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(follow(state, cfg)) if follow_log else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(title="jointbus console", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    jobs = Verifications(cfg, registry)
    proving = asyncio.Lock()  # one proof at a time: they share the local index file

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.headers.get("host", "").lower() not in hosts:
            log.warning("console.host_refused", host=request.headers.get("host", "")[:200])
            response: Response = PlainTextResponse(
                "421 this console does not answer to that host name (see --allowed-host)",
                status_code=421,
            )
        else:
            response = await call_next(request)
        response.headers["Content-Security-Policy"] = POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def page(request: Request, name: str, lang: str | None, status: int = 200, **values: Any) -> HTMLResponse:
        lang = language(lang)
        query = {k: v for k, v in request.query_params.items() if k != "lang"}
        t = translator(lang, registry)
        return templates.TemplateResponse(
            request,
            name,
            {
                "t": t,
                "names": {agency: t(agency) for agency in registry.agencies},
                "lang": lang,
                "other_lang": "en" if lang == "zh" else "zh",
                "switch": urlencode({**query, "lang": "en" if lang == "zh" else "zh"}),
                "keep": urlencode({**query, "lang": lang}),
                "charts": ECHARTS.exists(),
                "path": request.url.path,
                "records": len(state.entries),
                "ALL": ALL,
                **values,
            },
            status_code=status,
        )

    @app.exception_handler(JointbusError)
    async def refused(request: Request, exc: JointbusError) -> Response:
        status = 404 if exc.reason in ("not_found", "no_such_leaf") else 409
        if request.url.path.startswith("/api/") or request.url.path.endswith("/proof"):
            return JSONResponse({"reason": exc.reason, "message": exc.message}, status_code=status)
        lang = request.query_params.get("lang")
        return page(request, "error.html", lang, status, reason=exc.reason, message=exc.message)

    def period(since: str | None, until: str | None) -> tuple[str | None, str | None]:
        for value in (since, until):
            if value:
                try:
                    parse_time(value)
                except (ValueError, JointbusError):
                    raise HTTPException(400, f"not an RFC 3339 time: {value}") from None
        return since or None, until or None

    def live(since: str | None, until: str | None) -> dict[str, Any]:
        since, until = period(since, until)
        projection, _ = state.period(since, until)
        return {
            **figures.overview(projection),
            **figures.series(state, since, until),
            "version": state.version,
        }

    @app.get("/healthz")
    async def healthz() -> dict[str, int]:
        return {"records": len(state.entries), "next_offset": state.next_offset}

    @app.get("/", response_class=HTMLResponse)
    async def overview(
        request: Request, since: str | None = None, until: str | None = None, lang: str | None = None
    ) -> HTMLResponse:
        data = live(since, until)
        return page(request, "overview.html", lang, data=data, groups=GROUPS, since=since, until=until)

    @app.get("/api/figures")
    async def api_figures(since: str | None = None, until: str | None = None) -> dict[str, Any]:
        return live(since, until)

    @app.get("/api/stream", response_class=EventSourceResponse)
    async def api_stream(
        request: Request, since: str | None = None, until: str | None = None
    ) -> AsyncIterator[ServerSentEvent]:
        version = -1
        while not await request.is_disconnected():
            now = await state.wait_beyond(version, KEEPALIVE_SECONDS)
            if now == version:
                yield ServerSentEvent(comment="alive")
                continue
            await asyncio.sleep(SETTLE_SECONDS)
            version = state.version
            yield ServerSentEvent(data=live(since, until), event="figures", id=str(version))

    @app.get("/flow", response_class=HTMLResponse)
    async def flow(
        request: Request, since: str | None = None, until: str | None = None, lang: str | None = None
    ) -> HTMLResponse:
        projection, entries = state.period(*period(since, until))
        data = figures.flow(projection, entries)
        return page(request, "flow.html", lang, data=data, since=since, until=until)

    @app.get("/deadlines", response_class=HTMLResponse)
    async def deadlines(
        request: Request, since: str | None = None, until: str | None = None, lang: str | None = None
    ) -> HTMLResponse:
        projection, entries = state.period(*period(since, until))
        data = figures.deadlines(state, projection, entries, clock())
        return page(request, "deadlines.html", lang, data=data, since=since, until=until)

    @app.get("/figure/{agency}/{column}", response_class=HTMLResponse)
    async def figure(
        request: Request,
        agency: str,
        column: str,
        since: str | None = None,
        until: str | None = None,
        lang: str | None = None,
    ) -> HTMLResponse:
        if column not in figures.column_names() or (agency != ALL and agency not in registry.agency_ids):
            raise JointbusError(f"no figure {column} of {agency}", reason="not_found")
        since, until = period(since, until)
        projection, _ = state.period(since, until)
        who = WHOLE if agency == ALL else agency
        shown: dict[str, Any] = {"subjects": None, "events": None}
        if figures.is_open_column(column):
            shown["subjects"] = figures.open_subjects(projection, who, column)
        else:
            shown["events"] = figures.contributors(state, who, column, since, until)
        return page(request, "figure.html", lang, agency=agency, column=column, **shown)

    @app.get("/aggregate/{subject:path}", response_class=HTMLResponse)
    async def aggregate(request: Request, subject: str, lang: str | None = None) -> HTMLResponse:
        found = [state.entries[i] for i in state.by_subject.get(subject, [])]
        if not found:
            raise JointbusError(f"no event about {subject} in the audit log", reason="not_found")
        item = state.projection.items.get(subject)
        return page(request, "aggregate.html", lang, subject=subject, events=found, item=item)

    @app.get("/event/{event_id}", response_class=HTMLResponse)
    async def event(request: Request, event_id: str, lang: str | None = None) -> HTMLResponse:
        entry = entry_of(event_id)
        caused = [state.entries[i] for i in state.caused.get(event_id, [])]
        known = {e for e in (entry.causation, entry.correlation) if e and e in state.by_event}
        return page(request, "event.html", lang, entry=entry, caused=caused, known=known)

    @app.get("/event/{event_id}/proof")
    async def proof(event_id: str) -> PlainTextResponse:
        entry_of(event_id)
        async with proving:  # the index catches up on a thread: the pages keep answering
            text = await asyncio.to_thread(asyncio.run, build_proof(cfg, registry, event_id))
        disposition = f'attachment; filename="{event_id}.tlog-proof"'
        return PlainTextResponse(text, headers={"Content-Disposition": disposition})

    def entry_of(event_id: str) -> Entry:
        at = state.by_event.get(event_id)
        if at is None:
            raise JointbusError(f"no audit record about event {event_id}", reason="not_found")
        return state.entries[at]

    @app.get("/log", response_class=HTMLResponse)
    async def log_page(request: Request, lang: str | None = None) -> HTMLResponse:
        rows = await checkpoints(cfg, registry)
        job = jobs.latest.view() if jobs.latest else None
        return page(request, "log.html", lang, rows=rows, job=job, next_offset=state.next_offset)

    @app.post("/log/verify")
    async def verify(request: Request, lang: str | None = None) -> RedirectResponse:
        if not same_origin(request):  # a page of another site may not start jobs here
            raise HTTPException(403, "the verify button works from the console's own pages only")
        jobs.start()
        return RedirectResponse(f"/log?lang={language(lang)}", status_code=303)

    @app.get("/api/verify")
    async def api_verify() -> dict[str, Any]:
        return jobs.latest.view() if jobs.latest else {"state": "idle"}

    return app


def allowed_hosts(host: str, port: int, names: Iterable[str] = ()) -> frozenset[str]:
    """The ``Host`` header values the console answers to, listening on ``host:port``: the
    loopback names and the bound host with that port, and each configured name (``name`` or
    ``name:port``; a bare name with the listen port or none, as behind a reverse proxy).
    Lower-case; IPv6 addresses in brackets."""

    def bracketed(name: str) -> str:
        return f"[{name}]" if ":" in name and not name.startswith("[") else name

    allowed = {f"{bracketed(n)}:{port}" for n in ("127.0.0.1", "localhost", "::1", host)}
    for name in names:
        name = name.strip().lower()
        if not name:
            continue
        if name.startswith("[") or name.count(":") != 1:  # no port given (or a bare IPv6)
            allowed |= {bracketed(name), f"{bracketed(name)}:{port}"}
        else:
            allowed.add(name)
    return frozenset(a.lower() for a in allowed)


def same_origin(request: Request) -> bool:
    """True unless the browser says the request comes from another site (its ``Origin`` or
    ``Sec-Fetch-Site``): a form of another site open in an auditor's browser is refused."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site form (browsers send Origin on POST)
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")
