"""`jointbus demo` end to end: the main job, then the auditor's replay reproduces its summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jointbus.schemas.catalog import family_of
from tests.harness import figures_of, play_demo, run_jointbus

pytestmark = pytest.mark.broker


def test_demo_runs_and_replay_reproduces_its_summary(tmp_path: Path) -> None:
    """The demo succeeds; `audit verify` passes; `audit replay --json` equals the demo's own
    summary (which it computed from the agencies' inboxes, not from the audit log)."""
    env, run = play_demo(tmp_path)
    try:
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "6 hostile events rejected as expected" in run.stdout
        assert "replay of the audit log reproduces the summary above: yes, exactly" in run.stdout
        verify = run_jointbus("audit", "verify", env=env, cwd=tmp_path)
        assert verify.returncode == 0, verify.stderr
        assert "audit log OK" in verify.stdout
        assert "outbox records decided exactly once" in verify.stdout
        replay = run_jointbus("audit", "replay", "--json", env=env, cwd=tmp_path)
        summary = json.loads((tmp_path / "home" / "demo-summary.json").read_text())
        agencies, _ = figures_of(replay.stdout)
        assert agencies == summary["agencies"]
        by_agency = {row["agency"]: row for row in summary["agencies"]}
        assert by_agency["sc-yibin"]["checks_convened"] == 1
        assert by_agency["sc-yibin"]["rect_reopened"] == 1
        assert sum(row["overdue"] for row in summary["agencies"]) == 2  # the two late clues
        assert sum(row["rejected"] for row in summary["agencies"]) == 6
        assert sum(row["mechanisms"] for row in summary["agencies"]) == 14
        assert by_agency["sc-yibin"]["bulletins_posted"] == 1  # the chair's arrangement
        status = run_jointbus("status", "--json", env=env, cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        _, whole = figures_of(status.stdout)
        assert whole == totals_from_the_log(env, tmp_path) | {
            k: whole[k] for k in ("records", "since", "until")
        }
    finally:
        subprocess.run(
            [sys.executable, "-m", "jointbus", "broker", "stop"], env=env, timeout=60, cwd=tmp_path
        )


#: each collaboration figure: the event family whose accepted events it counts
COUNTED_AS = {
    "clues_transferred": "clue.transferred",
    "clues_received": "clue.transferred",
    "clues_accepted": "clue.accepted",
    "clues_returned": "clue.returned",
    "clues_disposed": "clue.disposition_reported",
    "checks_convened": "jointcheck.invited",
    "findings_reported": "jointcheck.findings_reported",
    "rect_issued": "rectification.issued",
    "rect_completed": "rectification.completion_reported",
    "rect_verified": "rectification.verified",
    "rect_reopened": "rectification.reopened",
    "overdue": "deadline.overdue",
    "meetings_chaired": "meeting.held",
    "mechanisms": "mechanism.established",
    "bulletins_posted": "bulletin.posted",
    "registry_proposals": "governance.proposed",
}


def totals_from_the_log(env: dict[str, str], cwd: Path) -> dict[str, int]:
    """The collaboration figures counted by hand from the exported audit log: accepted (or
    emitted) events by family, rejections, acceptances among responses, open items by the
    last step of each clue and rectification."""
    bundle = cwd / "bundle"
    done = run_jointbus("audit", "export", str(bundle), env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr
    lines = (bundle / "records.jsonl").read_text(encoding="utf-8").splitlines()
    by_position: dict[str, dict[str, object]] = {}
    for line in lines:  # a repeated record (written again after a restart) counts once
        record = json.loads(json.loads(line)["value"])
        by_position.setdefault(str(record["position"]), record)
    by_family: dict[str, int] = {}
    last_step: dict[str, str] = {}
    joined = rejected = 0
    for record in by_position.values():
        if record.get("decision") == "rejected":
            rejected += 1
        if record.get("decision") not in ("accepted", "emitted"):
            continue
        event: dict[str, object] = record.get("event") or {}  # type: ignore[assignment]
        family = family_of(str(event.get("type", "")))
        by_family[family] = by_family.get(family, 0) + 1
        data: dict[str, object] = event.get("data") or {}  # type: ignore[assignment]
        if family == "jointcheck.responded" and data.get("accepted") is True:
            joined += 1
        if family.startswith(("clue.", "rectification.")) and family != "rectification.progress_reported":
            last_step[str(event["subject"])] = family
    figures = {figure: by_family.get(family, 0) for figure, family in COUNTED_AS.items()}
    figures.update(checks_joined=joined, rejected=rejected)
    open_clue = ("clue.transferred", "clue.acknowledged", "clue.accepted")
    open_rect = ("rectification.issued", "rectification.completion_reported", "rectification.reopened")
    figures["clues_open"] = sum(1 for step in last_step.values() if step in open_clue)
    figures["rect_open"] = sum(1 for step in last_step.values() if step in open_rect)
    return figures
