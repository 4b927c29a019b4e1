"""`jointbus demo` end to end: the main job, then the auditor's replay reproduces its summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jointbus.streams.broker import free_port

pytestmark = pytest.mark.broker


def test_demo_runs_and_replay_reproduces_its_summary(tmp_path: Path) -> None:
    """The demo succeeds; `audit verify` passes; `audit replay --json` equals the demo's own
    summary (which it computed from the agencies' inboxes, not from the audit log)."""
    env = {**os.environ, "JOINTBUS_HOME": str(tmp_path / "home"), "JOINTBUS_BROKER_PORT": str(free_port())}
    env.pop("JOINTBUS_BOOTSTRAP", None)
    run = subprocess.run(
        [sys.executable, "-m", "jointbus", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        cwd=tmp_path,
    )
    try:
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "6 hostile events rejected as expected" in run.stdout
        assert "replay of the audit log reproduces the summary above: yes, exactly" in run.stdout
        verify = subprocess.run(
            [sys.executable, "-m", "jointbus", "audit", "verify"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert verify.returncode == 0, verify.stderr
        assert "audit log OK" in verify.stdout
        assert "outbox records decided exactly once" in verify.stdout
        replay = subprocess.run(
            [sys.executable, "-m", "jointbus", "audit", "replay", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        summary = json.loads((tmp_path / "home" / "demo-summary.json").read_text())
        assert json.loads(replay.stdout)["agencies"] == summary["agencies"]
        by_agency = {row["agency"]: row for row in summary["agencies"]}
        assert by_agency["sc-yibin"]["checks_convened"] == 1
        assert by_agency["sc-yibin"]["rect_reopened"] == 1
        assert sum(row["overdue"] for row in summary["agencies"]) == 2  # the two late clues
        assert sum(row["rejected"] for row in summary["agencies"]) == 6
        assert sum(row["mechanisms"] for row in summary["agencies"]) == 14
        assert by_agency["sc-yibin"]["bulletins_posted"] == 1  # the chair's arrangement
    finally:
        subprocess.run(
            [sys.executable, "-m", "jointbus", "broker", "stop"], env=env, timeout=60, cwd=tmp_path
        )
