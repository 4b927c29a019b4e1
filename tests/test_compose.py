"""The production compose file is never run here (no Docker engine), so it is at least read:
it parses, and every jointbus service runs a command the CLI has, with options it knows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from jointbus.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    return loaded


def command_of(args: list[str]) -> click.Command:
    """The CLI command ``args`` names (groups resolved one by one)."""
    command: click.Command = cli
    ctx = click.Context(cli, info_name="jointbus")
    rest = list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        name, found, rest = command.resolve_command(ctx, rest)
        assert found is not None, f"no command {name!r} in {args}"
        command = found
    return command


def test_compose_parses_and_every_service_command_exists() -> None:
    """Each jointbus service's command is a CLI command, and each option it passes is one of
    that command's options (a renamed flag breaks the compose file, and this test)."""
    services = compose()["services"]
    commands = {name: svc["command"] for name, svc in services.items() if "command" in svc}
    assert {"topics", "worker", "audit", "gateway-cq-rongchang"} <= commands.keys()
    assert sum(name.startswith("witness-") for name in commands) == 8
    for name, args in commands.items():
        command = command_of(args)
        known = {opt for param in command.params for opt in param.opts}
        passed = {a for a in args if a.startswith("--")}
        assert passed <= known, f"{name}: unknown options {passed - known}"


def test_a_standby_worker_runs_beside_the_leader() -> None:
    """Two workers: one leads through the router lease, the other stands by to take over
    (docs/router.md); each restarted if it dies."""
    worker = compose()["services"]["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert worker["restart"] == "unless-stopped"


def test_every_volume_and_secret_a_service_uses_is_declared() -> None:
    """Named volumes and secrets are declared at the top level (compose refuses otherwise)."""
    doc = compose()
    volumes, secrets = set(doc["volumes"]), set(doc.get("secrets", {}))
    for name, svc in doc["services"].items():
        for mount in svc.get("volumes", []):
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in volumes, f"{name}: volume {source} is not declared"
        for secret in svc.get("secrets", []):
            assert secret in secrets, f"{name}: secret {secret} is not declared"
