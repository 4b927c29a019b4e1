"""``jointbus inbox``: a recipient reads its events."""

from __future__ import annotations

import json

from jointbus import ui
from jointbus.streams import keystore
from jointbus.streams.judge import Refused
from jointbus.streams.sdk import Delivery, Subscriber
from jointbus.streams.security import kafka_kwargs
from jointbus.streams.settings import Settings


def say_refused(refused: Refused) -> None:
    """One readable line on stderr for a record the inbox refused (stdout stays the
    deliveries': ``--json`` readers see only events); reading goes on."""
    ui.err.print(f"passed over: {refused.describe()}", markup=False, highlight=False)


def summary(delivery: Delivery) -> str:
    """A one-line human summary of a delivered payload."""
    data = delivery.payload.model_dump(mode="json", exclude_none=True)
    for key in ("title", "problem", "note", "summary", "detail", "reason", "scope"):
        if key in data:
            return str(data[key])[:60]
    return json.dumps(data, ensure_ascii=False)[:60]


async def show_inbox(settings: Settings, agency: str, *, follow: bool, receipts: bool, as_json: bool) -> None:
    """Print the inbox of ``agency`` to its end (or follow it)."""
    registry = keystore.load_registry(settings.keystore_dir)
    ring = keystore.load_keyring(settings.keystore_dir, agency)
    seen = settings.home / "inbox" / f"{agency}.seen.sqlite"
    rows = []
    async with Subscriber(
        agency,
        ring,
        registry,
        settings.bootstrap_servers,
        receipts=receipts,
        seen_path=seen,
        until_end=not follow,
        group_id=f"jointbus-inbox-{agency}-cli",
        **kafka_kwargs(settings, agency),
    ) as sub:
        sub.on_refusal = say_refused
        async for d in sub:
            row = [
                d.envelope.time[:19].replace("T", " "),
                d.family,
                d.envelope.sender,
                d.envelope.subject[:30],
                summary(d),
            ]
            if as_json:
                env = d.envelope
                ui.json_line(
                    {
                        "id": d.id,
                        "type": env.type,
                        "family": d.family,
                        "time": env.time,
                        "from": env.sender,
                        "subject": env.subject,
                        "correlationid": env.correlationid,
                        "causationid": env.causationid,
                        "payload": d.payload.model_dump(mode="json"),
                    }
                )
            elif follow:
                ui.say("  ".join(row))
            else:
                rows.append(row)
    if not as_json and not follow:
        ui.table(
            f"inbox of {agency}: {len(rows)} new events",
            ["time", "type", "from", "subject", "summary"],
            rows,
        )
