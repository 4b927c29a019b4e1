"""`jointbus keys init | rotate | revoke`: the federation's keys as an operator manages them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from jointbus.schemas.registry_chain import check_genesis
from jointbus.streams import keystore


def jb(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JOINTBUS_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "jointbus", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_init_rotate_revoke(tmp_path: Path) -> None:
    """init writes private keys (0600) and Kafka credentials; rotate adds a key and expires the
    old one after the overlap; revoke marks a key; an unknown key is a one-line error."""
    home = tmp_path / "home"
    assert jb(home, "keys", "init").returncode == 0
    keys = home / "keys"
    assert (keys / "private" / "sc-zigong.json").stat().st_mode & 0o077 == 0
    assert (keys / "kafka" / "sc-zigong.json").stat().st_mode & 0o077 == 0
    genesis = keystore.load_registry(keys)
    signed = keystore.load_genesis(keys)
    assert signed is not None
    check_genesis(genesis, signed)  # every founding agency signed the genesis registry
    assert set(signed.signatures) == set(genesis.agencies)
    assert jb(home, "keys", "init").returncode == 2  # refuses to overwrite
    rotated = jb(home, "keys", "rotate", "sc-zigong", "--overlap-days", "2", "--offline")
    assert rotated.returncode == 0, rotated.stderr
    registry = json.loads((keys / "registry.json").read_text())
    mine = {k["kid"]: k for k in registry["keys"] if k["owner"] == "sc-zigong" and k["purpose"] == "sign"}
    assert set(mine) == {"sc-zigong#sig-1", "sc-zigong#sig-2"}
    assert mine["sc-zigong#sig-1"]["not_after"] is not None
    assert "sc-zigong#sig-2" in json.loads((keys / "private" / "sc-zigong.json").read_text())["keys"]
    assert (
        jb(home, "keys", "revoke", "sc-zigong#sig-1", "--reason", "laptop lost", "--offline").returncode == 0
    )
    registry = json.loads((keys / "registry.json").read_text())
    revoked = next(k for k in registry["keys"] if k["kid"] == "sc-zigong#sig-1")
    assert revoked["revocation_reason"] == "laptop lost"
    assert registry["version"] == 3
    unknown = jb(home, "keys", "revoke", "nope#sig-1", "--reason", "x", "--offline")
    assert unknown.returncode == 2
    assert "[unknown_key]" in unknown.stderr
    assert "Traceback" not in unknown.stderr
