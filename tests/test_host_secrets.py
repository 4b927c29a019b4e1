"""Secrets stay out of what other users of the host can see: no password on any command line
(``/proc/<pid>/cmdline`` is world-readable), config and credential files 0600, the broker's
data 0700. Each test is named after the leak it stops."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from jointbus.streams.broker import LocalBroker, free_port, probe
from jointbus.streams.security import load_credentials, new_credentials, principals
from tests.conftest import development_registry

pytestmark = pytest.mark.broker


class CmdlineWatch(threading.Thread):
    """Samples every process's ``/proc/<pid>/cmdline`` (as any local user could) and keeps
    those that mention ``marker``."""

    def __init__(self, marker: str) -> None:
        super().__init__(daemon=True)
        self.marker = marker.encode()
        self.seen: set[bytes] = set()
        self.samples = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    raw = (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                if self.marker in raw:
                    self.seen.add(raw)
            self.samples += 1
            time.sleep(0.002)

    def __enter__(self) -> CmdlineWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(timeout=10)


def test_no_secret_on_a_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Formatting and starting a secured broker puts no password (SCRAM users, admin,
    controller secret) on any command line: the storage tool gets them from an @argfile
    (0600 in a 0700 folder, deleted after), which still creates working users."""
    creds = new_credentials(tmp_path / "credentials", principals(development_registry().agencies))
    broker = LocalBroker(tmp_path / "broker", free_port(), heap="256m", scram_users=creds)
    launched: list[tuple[list[str], dict[str, tuple[str, int, int]]]] = []
    real_popen = subprocess.Popen

    class SpyPopen(real_popen):  # type: ignore[valid-type,misc]
        """Records every argv, and the @argfiles it names as they are at launch."""

        def __init__(self, args: Any, *rest: Any, **kw: Any) -> None:
            argv = [str(a) for a in args] if isinstance(args, list | tuple) else [str(args)]
            files = {}
            for arg in argv:
                if arg.startswith("@"):
                    path = Path(arg[1:])
                    files[arg[1:]] = (
                        path.read_text(),
                        stat.S_IMODE(path.stat().st_mode),
                        stat.S_IMODE(path.parent.stat().st_mode),
                    )
            launched.append((argv, files))
            super().__init__(args, *rest, **kw)

    monkeypatch.setattr(subprocess, "Popen", SpyPopen)
    try:
        with CmdlineWatch(str(broker.data_dir)) as watch:
            broker.start()
        monkeypatch.undo()
        secrets = [c.password for c in creds.values()]
        secrets.append((broker.data_dir / "controller.secret").read_text().strip())
        # the storage tool ran, from an argfile that carried the SCRAM users
        formats = [files for argv, files in launched if files]
        assert len(formats) == 1, launched
        [(argfile, (content, file_mode, dir_mode))] = formats[0].items()
        assert "kafka.tools.StorageTool" in content
        assert content.count("--add-scram") == len(creds)
        assert all(c.password in content for c in creds.values())
        assert (file_mode, dir_mode) == (0o600, 0o700)
        assert not Path(argfile).exists()
        assert not Path(argfile).parent.exists()
        # no launched argv carries a secret
        for argv, _ in launched:
            assert not any(secret in arg for secret in secrets for arg in argv), argv
        # what another user sees in /proc: the tool as "@file", the broker, no secret
        assert watch.samples > 10
        seen = [raw.decode(errors="replace") for raw in watch.seen]
        assert any(f"@{argfile}" in cmd for cmd in seen), seen
        assert any("kafka.Kafka" in cmd for cmd in seen), seen
        for cmd in seen:
            assert not any(secret in cmd for secret in secrets), cmd
        # the users made through the argfile authenticate
        assert asyncio.run(probe(broker.bootstrap, **creds["sc-zigong"].client_kwargs()))
    finally:
        monkeypatch.undo()
        broker.stop()


def test_broker_secrets_and_data_are_private_files(tmp_path: Path) -> None:
    """After `jointbus broker start` (run with umask 022), other users can read neither the
    broker config (admin password, controller secret), the credentials, nor Kafka's data."""
    home = tmp_path / "home"
    port = free_port()
    env = {**os.environ, "JOINTBUS_HOME": str(home)}
    env.pop("JOINTBUS_BOOTSTRAP", None)

    def jb(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jointbus", *args, "--port", str(port)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
            umask=0o022,
        )

    started = jb("broker", "start")
    try:
        assert started.returncode == 0, started.stderr
        data = home / "broker"

        def mode(path: Path) -> int:
            return stat.S_IMODE(path.stat().st_mode)

        assert mode(home) == 0o700
        assert mode(data) == 0o700
        assert mode(data / "kraft") == 0o700  # log.dirs
        for secret in ("server.properties", "controller.secret", "broker.log"):
            assert mode(data / secret) == 0o600, secret
        assert "password=" in (data / "server.properties").read_text()
        kafka_creds = home / "keys" / "kafka"
        assert mode(kafka_creds) == 0o700
        files = sorted(kafka_creds.glob("*.json"))
        assert {f.stem for f in files} == set(principals(()))  # no registry yet: the services
        assert all(mode(f) == 0o600 for f in files)
        load_credentials(kafka_creds, "admin")  # and they are what the broker uses
        # Kafka itself ran under umask 077: nothing it wrote is readable by others
        written = list((data / "kraft").rglob("*"))
        assert any(p.name.endswith(".log") for p in written)  # segments exist
        loose = [p for p in written if mode(p) & 0o077]
        assert not loose, loose
    finally:
        stopped = jb("broker", "stop")
        assert stopped.returncode == 0, stopped.stderr
