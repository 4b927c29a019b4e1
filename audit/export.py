"""Export bundles: the audit log, its checkpoints and the registry, verifiable offline.

Layout of DIR: ``records.jsonl`` (one audit-topic record per line: offset, key, value),
``checkpoints.jsonl`` (signed notes), ``cosignatures.jsonl`` (each witness's cosigned notes,
with the agency whose topic held it), ``registry.json``, ``manifest.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from jointbus.audit.cosigned import owned_note, read_cosigned
from jointbus.audit.errors import AuditError
from jointbus.schemas.checkpoints import MAX_NOTE
from jointbus.schemas.envelope import MAX_STRUCTURE, loads_with_flag
from jointbus.schemas.errors import ContractError
from jointbus.schemas.ids import format_time, utcnow
from jointbus.schemas.records import RECORD_STRUCTURE
from jointbus.schemas.registry import Registry
from jointbus.streams.reader import read_texts, read_topic
from jointbus.streams.topics import AUDIT_TOPIC, CHECKPOINT_TOPIC


async def export(
    bootstrap: str,
    registry: Registry,
    directory: Path,
    progress: Callable[[int], None] | None = None,
    **kafka: Any,
) -> dict[str, Any]:
    """Write a bundle of everything in the audit and checkpoint topics now."""
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (one local mkdir)
    count = 0
    with (directory / "records.jsonl").open("w", encoding="utf-8") as out:
        async for offset, key, value in read_topic(bootstrap, AUDIT_TOPIC, **kafka):
            out.write(
                json.dumps(
                    {
                        "offset": offset,
                        "key": None if key is None else key.decode(),
                        "value": value.decode(),
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
            count += 1
            if progress is not None and count % 1000 == 0:
                progress(count)
    notes = await read_texts(bootstrap, CHECKPOINT_TOPIC, **kafka)
    with (directory / "checkpoints.jsonl").open("w", encoding="utf-8") as out:
        for note in notes:
            out.write(json.dumps({"note": note}, ensure_ascii=False) + "\n")
    cosigned = (await read_cosigned(bootstrap, registry.agencies, **kafka)).notes
    with (directory / "cosignatures.jsonl").open("w", encoding="utf-8") as out:
        for agency, note in cosigned:
            out.write(json.dumps({"agency": agency, "note": note}, ensure_ascii=False) + "\n")
    (directory / "registry.json").write_text(registry.model_dump_json(indent=2), encoding="utf-8")
    manifest = {
        "format": "jointbus-audit-export/1",
        "created_at": format_time(utcnow()),
        "records": count,
        "checkpoints": len(notes),
        "cosignatures": len(cosigned),
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def _row(line: str, structure: int = MAX_STRUCTURE) -> dict[str, Any] | None:
    """One line of a bundle as a JSON object, through the bounded strict parser (a bundle is
    whatever its sender made it), or None."""
    try:
        row = loads_with_flag(line.encode("utf-8", errors="replace"), 4, structure)[0]
    except ContractError:
        return None
    return row if isinstance(row, dict) else None


def read_records(directory: Path) -> Iterator[tuple[int, bytes | None, bytes]]:
    """(offset, key, value) of an export's records, streaming."""
    with (directory / "records.jsonl").open(encoding="utf-8") as lines:
        for n, line in enumerate(lines):
            row = _row(line, RECORD_STRUCTURE + 16) or {}  # the record's own text counts too
            offset, key, value = row.get("offset"), row.get("key"), row.get("value")
            if not (
                isinstance(offset, int) and isinstance(value, str) and (key is None or isinstance(key, str))
            ):
                raise AuditError(f"records.jsonl line {n + 1} is not a record", reason="bad_export")
            yield offset, None if key is None else key.encode(), value.encode()


def read_checkpoints(directory: Path) -> list[str]:
    """The signed checkpoint notes of an export."""
    path = directory / "checkpoints.jsonl"
    if not path.exists():
        raise AuditError(f"{path} is missing", reason="bad_export")
    notes = [(_row(line) or {}).get("note") for line in path.read_text(encoding="utf-8").splitlines() if line]
    if not all(isinstance(note, str) for note in notes):
        raise AuditError(f"{path} holds a line that is not a note", reason="bad_export")
    return notes  # type: ignore[return-value]


def read_cosignatures(directory: Path) -> list[str]:
    """The witnesses' cosigned notes of an export (none in a bundle from before witnesses).
    Total: a line that is not a note is passed over; a note with its agency is cut as when
    read from that witness's topic (``owned_note``); one without (a bundle from before
    per-witness topics) is kept when it is of a note's size, its lines verified later."""
    path = directory / "cosignatures.jsonl"
    if not path.exists():
        return []
    notes = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        row = _row(line) or {}
        note, agency = row.get("note"), row.get("agency")
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            continue
        if isinstance(agency, str):
            note = owned_note(agency, note.encode("utf-8", errors="replace"))
        if note is not None:
            notes.append(note)
    return notes


def read_registry(directory: Path) -> Registry:
    """The registry saved in an export."""
    return Registry.model_validate_json((directory / "registry.json").read_text(encoding="utf-8"))
