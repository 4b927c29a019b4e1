"""`jointbus console` after the demo scenario, in a real headless Chromium (Debian's
/usr/bin/chromium, driven by Playwright; `make browser` installs it and the CJK font).

One demo, one console process and one browser for the whole module: the overview shows
the figures of `audit replay --json`, the clue-flow Sankey has one link per pair of
agencies that transferred clues, an event's proof downloads and passes `audit check-proof`,
the figures follow the log live, and a sealed clue's content appears in no page at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from jointbus.console.app import ALL
from jointbus.processes import JointbusProcess, WorkerProcess
from jointbus.schemas.catalog import family_of
from jointbus.schemas.deadlines import china_date
from jointbus.schemas.ids import utcnow
from jointbus.schemas.projections import COLUMNS
from jointbus.streams.broker import free_port
from tests.harness import figures_of, play_demo, run_jointbus

pytestmark = pytest.mark.broker
T = TypeVar("T")
SECURED = {"JOINTBUS_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}
#: where the screenshots land (git-ignored), described in the README
SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"
CHROMIUM = "/usr/bin/chromium"


class ConsoleProcess(JointbusProcess):
    """`jointbus console --listen 127.0.0.1:<port>` as a child process."""

    ready_mark = "console at http://"

    def __init__(self, home: Path, bootstrap: str, port: int, **env: str) -> None:
        super().__init__(home, bootstrap, **env)
        self.args = ("console", "--listen", f"127.0.0.1:{port}")


@dataclass
class Demo:
    """The demo's bus, its console, and how to run `jointbus` against them."""

    home: Path
    bootstrap: str
    env: dict[str, str]
    cwd: Path
    url: str
    worker: WorkerProcess | None = None

    def jointbus(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = run_jointbus(*args, env=self.env, cwd=self.cwd)
        assert done.returncode == 0, f"jointbus {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done

    def records(self) -> list[dict[str, Any]]:
        """Every leaf of the audit log, from `audit export` (not from the console)."""
        bundle = self.cwd / f"bundle-{uuid.uuid4().hex[:6]}"
        self.jointbus("audit", "export", str(bundle))
        by_position: dict[str, dict[str, Any]] = {}
        for line in (bundle / "records.jsonl").read_text(encoding="utf-8").splitlines():
            record = json.loads(json.loads(line)["value"])
            by_position.setdefault(str(record["position"]), record)
        return list(by_position.values())


def until(probe: Callable[[], T | None], within: float, what: str) -> T:
    """The first result of ``probe`` that is not None; fails saying ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`jointbus demo` on a broker of its own, then `jointbus console` on it."""
    cwd = tmp_path_factory.mktemp("console")
    env, played = play_demo(cwd)
    bootstrap = f"127.0.0.1:{env['JOINTBUS_BROKER_PORT']}"
    web = free_port()
    console = ConsoleProcess(cwd / "home", bootstrap, web, **SECURED)
    bus = Demo(cwd / "home", bootstrap, env, cwd, f"http://127.0.0.1:{web}")
    try:
        assert played.returncode == 0, played.stdout[-3000:] + played.stderr[-3000:]
        console.start(timeout=60)
        yield bus
    finally:
        console.stop()
        if bus.worker is not None:
            bus.worker.stop()
        subprocess.run([sys.executable, "-m", "jointbus", "broker", "stop"], env=env, cwd=cwd, timeout=60)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless (no browser is downloaded)."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make browser`"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # bypass_csp: Playwright's own waits evaluate strings, which the console's policy forbids
    tab = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True, bypass_csp=True)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    tab.close()
    assert not errors, f"script errors on the page: {errors}"


def charts_ready(page: Page, chart: str) -> None:
    """Wait (bounded) until ECharts drew ``chart``; fails loudly when ECharts is not served."""
    assert page.evaluate("typeof echarts") == "object", "ECharts is not served: run `make charts`"
    page.wait_for_function(
        f"echarts.getInstanceByDom(document.getElementById('{chart}')) !== undefined", timeout=10_000
    )


def shown_figures(page: Page) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """The overview's numbers as the page shows them: per agency, and the collaboration's."""
    cells = page.eval_on_selector_all(
        "a.figure[data-agency][data-column]",
        "cells => cells.map(c => [c.dataset.agency, c.dataset.column, c.textContent.trim()])",
    )
    rows: dict[str, dict[str, int]] = {}
    for agency, column, text in cells:
        rows.setdefault(agency, {})[column] = int(text)
    return {k: v for k, v in rows.items() if k != ALL}, rows[ALL]


def test_screenshots_of_the_overview_and_the_clue_flow(demo: Demo, page: Page) -> None:
    """After the demo, the overview and clue-flow pages render in Chinese with their
    charts; both are saved as screenshots (screenshots/, ignored by git)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.goto(demo.url + "/")
    charts_ready(page, "series-chart")
    assert "自贡市纪委监委" in page.inner_text("table.figures")
    page.screenshot(path=SCREENSHOTS / "console-overview.png", full_page=True)
    page.goto(demo.url + "/flow")
    charts_ready(page, "flow-chart")
    page.screenshot(path=SCREENSHOTS / "console-clue-flow.png", full_page=True)
    assert (SCREENSHOTS / "console-overview.png").stat().st_size > 10_000


def test_overview_shows_the_figures_of_audit_replay(demo: Demo, page: Page) -> None:
    """Every number of the overview, per agency and in total, equals `audit replay --json`;
    in English the agencies carry the registry's English names."""
    replay_rows, whole = figures_of(demo.jointbus("audit", "replay", "--json").stdout)
    page.goto(demo.url + "/?lang=en")
    rows, totals = shown_figures(page)
    assert rows == {row["agency"]: {c: row[c] for c in COLUMNS} for row in replay_rows}
    assert totals == {c: whole[c] for c in COLUMNS}
    assert sum(totals.values()) > 50  # the demo's figures, not an empty log
    assert "Zigong" in page.inner_text("table.figures")
    assert page.inner_text("[data-figure=records]") == str(whole["records"])


def test_clue_flow_chart_has_a_link_per_pair_of_agencies(demo: Demo, page: Page) -> None:
    """The Sankey draws one link per (sender, recipient) pair of the accepted clue
    transfers in the audit log, carrying that many clues."""
    pairs: dict[tuple[str, str], int] = {}
    for record in demo.records():
        event = record.get("event") or {}
        if record["decision"] == "accepted" and family_of(event.get("type", "")) == "clue.transferred":
            for to in event["recipients"]:
                pairs[(record["sender"], to)] = pairs.get((record["sender"], to), 0) + 1
    assert len(pairs) >= 6
    page.goto(demo.url + "/flow")
    charts_ready(page, "flow-chart")
    links = page.evaluate(
        "echarts.getInstanceByDom(document.getElementById('flow-chart')).getOption().series[0].links"
    )
    drawn = {
        (link["source"].removeprefix("from:"), link["target"].removeprefix("to:")): link["value"]
        for link in links
    }
    assert len(links) == len(pairs)
    assert drawn == pairs


def test_an_event_page_proof_downloads_and_passes_check_proof(demo: Demo, page: Page) -> None:
    """From a figure to its events, from an event to its proof: the download is a C2SP
    tlog-proof that `jointbus audit check-proof` accepts."""
    page.goto(demo.url + f"/figure/{ALL}/mechanisms")
    assert page.inner_text("#figure-count") == page.eval_on_selector_all(
        "tr.event", "rows => String(rows.length)"
    )
    page.click("tr.event a[href^='/event/']")
    page.wait_for_selector("#proof")
    assert "mechanism.established" in page.inner_text("dl.event-detail")
    with page.expect_download(timeout=60_000) as download:
        page.click("#proof")
    proof = demo.cwd / "mechanism.tlog-proof"
    download.value.save_as(proof)
    checked = demo.jointbus("audit", "check-proof", str(proof))
    assert "proof OK" in checked.stdout


def test_figures_follow_the_log_and_a_sealed_clue_appears_nowhere(demo: Demo, page: Page) -> None:
    """A clue published now (sealed) moves the open overview's figures without a reload;
    then no page, API answer or live event of the console holds any of its plaintext."""
    page.goto(demo.url + "/")
    cell = f"a.figure[data-agency='{ALL}'][data-column='clues_transferred']"
    before = int(page.inner_text(cell))
    demo.worker = WorkerProcess(demo.home, demo.bootstrap, **SECURED).start()
    secret = f"秘密线索{uuid.uuid4().hex}"
    clue = {
        "title": f"{secret}标题",
        "summary": f"{secret}：举报内容",
        "persons": [{"name": f"{secret}某", "position": "局长", "unit": "大足某局"}],
        "allegations": [f"{secret}问题"],
        "jurisdiction_basis": "被反映人系大足区管理干部",
        "acknowledge_by": (china_date(utcnow()) + timedelta(days=3)).isoformat(),
    }
    demo.jointbus(
        "publish", "--as", "sc-zigong", "--type", "clue.transferred", "--to", "cq-dazu",
        "--data", json.dumps(clue, ensure_ascii=False), "--wait", "routed",
    )  # fmt: skip
    page.wait_for_function(
        f"document.querySelector(\"{cell}\").textContent.trim() === '{before + 1}'", timeout=30_000
    )
    records = demo.records()
    assert any(secret not in json.dumps(r, ensure_ascii=False) for r in records)  # sealed in the log too
    urls = ["/", "/?lang=en", "/flow", "/deadlines", "/log", "/api/figures", "/api/verify", "/flow?lang=en"]
    urls += [f"/figure/{a}/{c}" for a in (ALL, "sc-zigong", "cq-dazu") for c in COLUMNS]
    for record in records:
        event = record.get("event") or {}
        if event.get("subject"):
            urls.append(f"/aggregate/{event['subject']}")
        if record.get("event_id"):
            urls.append(f"/event/{record['event_id']}")
    with httpx.Client(base_url=demo.url, timeout=60) as http:
        for url in urls:
            answer = http.get(url)
            assert answer.status_code == 200, (url, answer.status_code)
            assert secret not in answer.text, url
        with http.stream("GET", "/api/stream") as stream:
            first = next(line for line in stream.iter_lines() if line.startswith("data:"))
        assert '"clues_transferred"' in first
        assert secret not in first
    assert secret not in page.content()


def test_the_verify_button_runs_audit_verify_with_progress(demo: Demo, page: Page) -> None:
    """The log page lists the signed checkpoints with their witnesses; its verify button
    runs the checks of `audit verify` in the background and reports what it says."""
    page.goto(demo.url + "/log?lang=en")
    assert page.locator("tr.checkpoint").count() >= 2
    assert "Yibin" in page.inner_text("table.checkpoints")  # every agency's witness cosigned the last one
    page.click("#verify")
    page.wait_for_function(
        "['passed', 'failed'].includes(document.getElementById('verify-state').dataset.state)",
        timeout=120_000,
    )
    said = page.inner_text("#verify-lines")
    assert page.get_attribute("#verify-state", "data-state") == "passed", said
    assert said.startswith("audit log OK:")
    assert "outbox records decided exactly once" in said
    assert page.get_attribute("#verify-progress", "value") == page.get_attribute("#verify-progress", "max")
