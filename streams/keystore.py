"""The keystore directory: the public registry file and one private keyring per member.

Layout: ``registry.json`` (public), ``private/<member>.json`` (mode 0600, directory 0700).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from jointbus.schemas.keys import Keyring
from jointbus.schemas.registry import Registry
from jointbus.streams.errors import ConfigError

if TYPE_CHECKING:  # the chain's module pulls in the rules: only genesis readers need it
    from jointbus.schemas.registry_chain import GenesisSignatures

REGISTRY_FILE = "registry.json"
#: the founding agencies' signatures over the genesis registry (``keys init`` writes it)
GENESIS_FILE = "genesis-signatures.json"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and any missing parent) as a folder only its owner can enter, and
    tighten it to 0700 if it exists: local state (keys, broker data, indexes) stays private."""
    for folder in reversed([p for p in (path, *path.parents) if not p.exists()]):
        folder.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read, atomically."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def save_registry(directory: Path, registry: Registry) -> Path:
    """Write the public registry file (in a private keystore folder)."""
    private_dir(directory)
    path = directory / REGISTRY_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(registry.model_dump_json(indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


def save_keyring(directory: Path, ring: Keyring) -> Path:
    """Write one member's private keyring, readable by the owner only."""
    private = private_dir(directory / "private")
    path = private / f"{ring.owner}.json"
    write_private(path, ring.model_dump_json(indent=2))
    return path


def load_registry(directory: Path) -> Registry:
    """Read the public registry file of a keystore."""
    path = directory / REGISTRY_FILE
    if not path.exists():
        raise ConfigError(f"no registry at {path}; create one with 'jointbus keys init --dir {directory}'")
    return Registry.model_validate_json(path.read_text(encoding="utf-8"))


def save_genesis(directory: Path, signed: GenesisSignatures) -> Path:
    """Write the founding agencies' signatures over the genesis registry."""
    path = directory / GENESIS_FILE
    path.write_text(signed.model_dump_json(indent=2), encoding="utf-8")
    return path


def load_genesis(directory: Path) -> GenesisSignatures | None:
    """The founding agencies' signatures over the genesis registry, if the keystore has them."""
    path = directory / GENESIS_FILE
    if not path.exists():
        return None
    from jointbus.schemas.registry_chain import GenesisSignatures

    return GenesisSignatures.model_validate_json(path.read_text(encoding="utf-8"))


def load_keyring(directory: Path, owner: str) -> Keyring:
    """Read one member's private keyring; refuses files others can read."""
    path = directory / "private" / f"{owner}.json"
    if not path.exists():
        raise ConfigError(f"no private keys for {owner} in {directory}")
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path} is readable by others; chmod 600 it")
    ring = Keyring.model_validate(json.loads(path.read_text(encoding="utf-8")))
    if ring.owner != owner:
        raise ConfigError(f"{path} holds the keys of {ring.owner}, not {owner}")
    return ring
