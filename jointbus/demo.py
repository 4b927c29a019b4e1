"""``make demo``: the main job on the embedded broker.

Starts the broker and a worker, creates a development federation, and plays a scenario
among the eight agencies: clues transferred across the Sichuan–Chongqing border and
handled to disposition, a joint check of the Xiangjiaba irrigation district's northern
main canal with three agencies producing findings, rectifications issued, progressed,
completed and verified (one reopened, one past its deadline), acknowledgements that come
late so overdue alerts fire, and forged or unauthorized events that the router must reject.
Every agency reads its inbox through the SDK's Subscriber (which sends receipts).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from rich.progress import Progress

from jointbus import ui
from jointbus.context import local_broker
from jointbus.processes import AuditProcess, WorkerProcess
from jointbus.views import print_projection
from schemas.catalog import ItemOverdue, RejectionNotice
from schemas.compose import compose
from schemas.envelope import to_wire
from schemas.errors import JointbusError
from schemas.ids import utcnow
from schemas.keys import Keyring, new_federation
from schemas.lifecycle import china_date
from schemas.projections import Projection, apply
from schemas.records import AuditRecord
from schemas.registry import ROUTER, Registry
from schemas.signing import sign_envelope
from streams import keystore
from streams.broker import LocalBroker
from streams.provision import provision
from streams.reader import read_topic
from streams.sdk import Delivery, Publisher, Subscriber
from streams.security import ADMIN, ensure_credentials, kafka_kwargs
from streams.settings import Settings

ACK_DEADLINE = 6.0  # seconds: the demo's acknowledgement deadline for transferred clues


@dataclass
class Expected:
    """What the scenario means to happen, to check against what the bus did."""

    rejections: dict[str, str] = field(default_factory=dict)  # event id -> reason
    overdue: set[str] = field(default_factory=set)  # subjects


class Federation:
    """The registry's agencies at work: a Publisher and a Subscriber each."""

    def __init__(self, cfg: Settings, registry: Registry, rings: dict[str, Keyring]) -> None:
        self.cfg, self.registry, self.rings = cfg, registry, rings
        self.pubs = {
            a: Publisher(a, rings[a], registry, cfg.bootstrap_servers, **kafka_kwargs(cfg, a))
            for a in registry.agencies
        }
        self.subs = {
            a: Subscriber(
                a,
                rings[a],
                registry,
                cfg.bootstrap_servers,
                group_id=f"jointbus-inbox-{a}-demo",
                seen_path=cfg.home / "inbox" / f"{a}.seen.sqlite",
                **kafka_kwargs(cfg, a),
            )
            for a in registry.agencies
        }
        self.inbox: dict[str, dict[str, Delivery]] = defaultdict(dict)
        self.arrived = asyncio.Condition()
        self.tasks: list[asyncio.Task[None]] = []
        self.expected = Expected()

    async def __aenter__(self) -> Federation:
        for a in self.registry.agencies:
            await self.pubs[a].start()
            await self.subs[a].start()
            self.tasks.append(asyncio.create_task(self.subs[a].run(self._on(a))))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for a in self.registry.agencies:
            await self.pubs[a].stop()
            await self.subs[a].stop()

    def observed(self) -> Projection:
        """The figures as the agencies themselves saw them: every event in any inbox once,
        rejections as their notices told the senders. Independent of the audit log."""
        seen: dict[str, Delivery] = {}
        for deliveries in self.inbox.values():
            for d in deliveries.values():
                seen.setdefault(d.id, d)
        projection = Projection(self.registry.agencies, unit="events seen in inboxes")
        for d in sorted(seen.values(), key=lambda d: (d.envelope.time, d.id)):
            if isinstance(d.payload, RejectionNotice):
                record = AuditRecord(
                    position=f"notice:{d.payload.rejected_event_id}",
                    received_at=d.envelope.time,
                    decision="rejected",
                    reason=d.payload.reason,
                    sender=d.envelope.recipients[0],
                )
            else:
                record = AuditRecord(
                    position=f"event:{d.id}",
                    received_at=d.envelope.time,
                    decision="emitted" if d.envelope.sender == ROUTER else "accepted",
                    event_id=d.id,
                    sender=d.envelope.sender,
                    event=d.verified.raw,
                    delivered_to=list(d.envelope.recipients),
                )
            apply(projection, record)
        return projection

    def _on(self, agency: str) -> Callable[[Delivery], Awaitable[bool]]:
        async def handle(d: Delivery) -> bool:
            async with self.arrived:
                self.inbox[agency][d.id] = d
                self.arrived.notify_all()
            return False

        return handle

    async def wait_for(self, agency: str, match: Callable[[Delivery], bool], within: float = 60) -> Delivery:
        """The first delivery to ``agency`` that matches (waiting for it)."""
        async with asyncio.timeout(within), self.arrived:
            while True:
                for d in self.inbox[agency].values():
                    if match(d):
                        return d
                await self.arrived.wait()

    async def send(
        self,
        agency: str,
        family: str,
        subject: str,
        to: list[str],
        payload: dict[str, Any],
        **kw: Any,
    ) -> str:
        """Publish as ``agency`` and wait until every recipient has it."""
        event_id = await self.pubs[agency].publish(family, subject, to, payload, **kw)
        for r in to:
            await self.wait_for(r, lambda d: d.id == event_id)
        return event_id

    async def attack(self, agency: str, envelope: dict[str, Any], reason: str) -> None:
        """Send a hostile event through ``agency``'s outbox; wait for the rejection notice."""
        await (await self.pubs[agency].send_wire(to_wire(envelope), envelope["subject"]))
        self.expected.rejections[envelope["id"]] = reason
        notice = await self.wait_for(
            agency,
            lambda d: (
                isinstance(d.payload, RejectionNotice) and d.payload.rejected_event_id == envelope["id"]
            ),
        )
        assert isinstance(notice.payload, RejectionNotice)
        if notice.payload.reason != reason:
            raise JointbusError(f"demo: expected {reason}, router said {notice.payload.reason}")


def overdue_of(aggregate: str) -> Callable[[Delivery], bool]:
    """Matches the overdue alert of ``aggregate``."""
    return lambda d: d.envelope.subject == aggregate and isinstance(d.payload, ItemOverdue)


def subject(kind: str) -> str:
    return f"{kind}/{uuid.uuid4()}"


# ------------------------------------------------------------------------------ the story
CLUES = [
    # (from, to, title, person, unit, basis, how it ends)
    (
        "sc-zigong",
        "cq-yongchuan",
        "自永高速（自贡段）第3标段违规分包",
        "李某",
        "永川某路桥公司",
        "被反映人系永川区管理的国企干部",
        "case_opened",
    ),
    (
        "cq-jiangjin",
        "sc-luzhou",
        "江泸宜高速征地补偿款发放不规范",
        "周某",
        "泸州某镇政府",
        "被反映人系泸州市管理的乡镇干部",
        "organizational_handling",
    ),
    (
        "cq-yongchuan",
        "sc-luzhou",
        "渝昆高铁沱江特大桥项目监理收受礼金",
        "吴某",
        "某监理公司",
        "项目位于泸州境内",
        "returned",
    ),
    (
        "cq-dazu",
        "sc-neijiang",
        "长江十年禁渔执法人员充当保护伞",
        "郑某",
        "内江某渔政站",
        "被反映人系内江市管理干部",
        "closed_unsubstantiated",
    ),
    (
        "sc-neijiang",
        "cq-dazu",
        "跨界河流污染治理资金挪用",
        "王某",
        "大足某环保所",
        "被反映人系大足区管理干部",
        "late",
    ),
    (
        "sc-yibin",
        "cq-jiangjin",
        "成宜高铁配套工程材料以次充好",
        "陈某",
        "江津某建材公司",
        "涉事企业负责人系江津区管理人员",
        "late",
    ),
]


async def play_clues(fed: Federation, progress: Callable[[str], None]) -> None:
    """Clues transferred across the border and handled to disposition (two acknowledged late)."""
    today = china_today()
    late: list[tuple[str, str, str, str]] = []
    for src, dst, title, person, unit, basis, ending in CLUES:
        s = subject("clue")
        transfer = await fed.send(
            src,
            "clue.transferred",
            s,
            [dst],
            {
                "title": title,
                "summary": f"{title}：群众实名举报，附相关材料。",
                "persons": [{"name": person, "position": "负责人", "unit": unit}],
                "allegations": [title],
                "jurisdiction_basis": basis,
                "acknowledge_by": (today + timedelta(days=3)).isoformat(),
            },
        )
        progress(f"clue {src} → {dst}: {title}")
        if ending == "late":
            late.append((src, dst, s, transfer))
            fed.expected.overdue.add(s)
            continue
        causes = {"causationid": transfer, "correlationid": transfer}
        await fed.send(dst, "clue.acknowledged", s, [src], {"note": "已收到，已登记"}, **causes)
        if ending == "returned":
            await fed.send(
                dst,
                "clue.returned",
                s,
                [src],
                {"reason": "not_our_jurisdiction", "explanation": "被反映人属重庆方管理，建议退回"},
                **causes,
            )
            continue
        await fed.send(dst, "clue.accepted", s, [src], {"handling_department": "第二监督检查室"}, **causes)
        await fed.send(
            dst,
            "clue.disposition_reported",
            s,
            [src],
            {"disposition": ending, "summary": f"{title}：已按规定处置"},
            **causes,
        )
    # the two late clues: wait until the overdue alert fires, then acknowledge and accept
    for src, dst, s, transfer in late:
        await fed.wait_for(
            dst,
            overdue_of(s),
            within=ACK_DEADLINE * 10,
        )
        progress(f"overdue: {dst} did not acknowledge {s[:13]}… in time")
        causes = {"causationid": transfer, "correlationid": transfer}
        await fed.send(dst, "clue.acknowledged", s, [src], {"note": "逾期确认收到"}, **causes)
        await fed.send(dst, "clue.accepted", s, [src], {"handling_department": "第一监督检查室"}, **causes)


async def play_joint_check(fed: Federation, progress: Callable[[str], None]) -> list[tuple[str, str]]:
    """Yibin convenes a joint check of the northern main canal with Zigong and Neijiang."""
    today = china_today()
    check = subject("jointcheck")
    invite = await fed.send(
        "sc-yibin",
        "jointcheck.invited",
        check,
        ["sc-zigong", "sc-neijiang"],
        {
            "project": {
                "name": "向家坝灌区北总干渠",
                "location": "宜宾—自贡—内江",
                "kind": "irrigation canal",
            },
            "scope": "工程质量、建设资金使用、征地拆迁补偿；交叉检查破除熟人社会干扰",
            "start_date": today.isoformat(),
            "end_date": (today + timedelta(days=10)).isoformat(),
            "staff_requested": {"sc-zigong": 2, "sc-neijiang": 2},
            "respond_by": today.isoformat(),
        },
    )
    progress("joint check convened by sc-yibin: 向家坝灌区北总干渠")
    for agency, staff in (("sc-zigong", ["刘某", "杨某"]), ("sc-neijiang", ["黄某", "赵某"])):
        await fed.send(
            agency,
            "jointcheck.responded",
            check,
            ["sc-yibin"],
            {"accepted": True, "staff": [{"name": n, "role": "交叉检查组员"} for n in staff]},
            causationid=invite,
            correlationid=invite,
        )
    findings = {
        "sc-yibin": [("F-YB-1", "工程质量", "渠道衬砌混凝土强度不达标", "high", "自贡某水利工程局")],
        "sc-zigong": [
            ("F-ZG-1", "资金使用", "工程进度款超付", "medium", "内江某建设公司"),
            ("F-ZG-2", "征地补偿", "补偿款未足额发放到户", "high", "自贡某街道办"),
        ],
        "sc-neijiang": [("F-NJ-1", "安全生产", "施工现场安全防护缺失", "low", "内江某建设公司")],
    }
    issued: list[tuple[str, str]] = []
    for agency, items in findings.items():
        others = sorted({"sc-yibin", "sc-zigong", "sc-neijiang"} - {agency})
        await fed.send(
            agency,
            "jointcheck.findings_reported",
            check,
            others,
            {
                "findings": [
                    {
                        "finding_id": f,
                        "category": c,
                        "description": d,
                        "severity": sev,
                        "responsible_unit": u,
                    }
                    for f, c, d, sev, u in items
                ]
            },
            causationid=invite,
            correlationid=invite,
        )
        issued += [(f, u) for f, _, _, _, u in items]
    progress("findings reported by all three agencies")
    return issued


async def play_rectifications(fed: Federation, progress: Callable[[str], None]) -> None:
    """Findings become rectifications: verified, one reopened."""
    today = china_today()
    plan = [  # (responsible agency, finding, unit, problem, deadline, path)
        (
            "sc-zigong",
            "F-YB-1",
            "自贡某水利工程局",
            "渠道衬砌混凝土强度不达标，返工重做",
            40,
            "verified",
        ),
        ("sc-neijiang", "F-ZG-1", "内江某建设公司", "追回超付进度款", 30, "reopened"),
        ("sc-zigong", "F-ZG-2", "自贡某街道办", "补偿款足额发放到户并公示", 20, "verified"),
        ("sc-neijiang", "F-NJ-1", "内江某建设公司", "完善施工现场安全防护", 10, "verified"),
    ]
    for agency, finding, unit, problem, days, path in plan:
        s = subject("rectification")
        issue = await fed.send(
            "sc-yibin",
            "rectification.issued",
            s,
            [agency],
            {
                "responsible_unit": unit,
                "problem": problem,
                "deadline": (today + timedelta(days=days)).isoformat(),
                "source_finding": finding,
            },
        )
        links = {"causationid": issue, "correlationid": issue}
        await fed.send(
            agency,
            "rectification.progress_reported",
            s,
            ["sc-yibin"],
            {"percent_complete": 50, "note": "整改过半"},
            **links,
        )
        await fed.send(
            agency,
            "rectification.completion_reported",
            s,
            ["sc-yibin"],
            {"summary": "整改完成，附第三方检测报告", "evidence_refs": [f"doc:{finding}"]},
            **links,
        )
        if path == "reopened":
            await fed.send(
                "sc-yibin",
                "rectification.reopened",
                s,
                [agency],
                {
                    "reason": "抽查发现仍有超付款项未追回",
                    "new_deadline": (today + timedelta(days=15)).isoformat(),
                },
                **links,
            )
            await fed.send(
                agency,
                "rectification.completion_reported",
                s,
                ["sc-yibin"],
                {"summary": "超付款项已全部追回"},
                **links,
            )
        await fed.send(
            "sc-yibin",
            "rectification.verified",
            s,
            [agency],
            {"note": "经现场核查，同意销号"},
            **links,
        )
        progress(f"rectification {finding} → {path}")


def china_today() -> date:
    """Today in China Standard Time, the zone every deadline date is in (whatever the host's)."""
    return china_date(utcnow())


def all_but(fed: Federation, agency: str) -> list[str]:
    """Every member agency except ``agency``."""
    return [a for a in fed.registry.agencies if a != agency]


async def play_governance(fed: Federation, progress: Callable[[str], None]) -> None:
    """Joint meeting under the rotating chair, the chair passed on, mechanisms established."""
    today = china_today()
    await fed.send(
        "cq-rongchang",
        "meeting.held",
        subject("meeting"),
        all_but(fed, "cq-rongchang"),
        {
            "chair": "cq-rongchang",
            "held_on": today.isoformat(),
            "attendees": list(fed.registry.agencies),
            "topics": ["川渝毗邻地区纪检监察协作", "长江十年禁渔联合监督", "跨界河流污染治理"],
        },
    )
    await fed.send(
        "cq-rongchang",
        "chair.rotated",
        "chair/rotation",
        all_but(fed, "cq-rongchang"),
        {
            "new_chair": "sc-yibin",
            "term_start": today.isoformat(),
            "term_end": (today + timedelta(days=182)).isoformat(),
        },
    )
    for title, kind, parts in (
        ("问题线索双向移送机制", "clue transfer", list(fed.registry.agencies)),
        ("交叉检查人员互派机制", "staff exchange", ["sc-yibin", "sc-zigong", "sc-neijiang"]),
        (
            "跨界河流联防联治监督机制",
            "joint supervision",
            ["sc-neijiang", "cq-dazu", "cq-rongchang"],
        ),
    ):
        await fed.send(
            "sc-yibin",
            "mechanism.established",
            subject("mechanism"),
            all_but(fed, "sc-yibin"),
            {
                "title": title,
                "kind": kind,
                "participants": parts,
                "effective_from": today.isoformat(),
            },
        )
    progress("joint meeting held; chair passed to sc-yibin; 3 mechanisms established")


async def play_attacks(fed: Federation, progress: Callable[[str], None]) -> None:
    """Forged, replayed and unauthorized events, which the router must reject."""
    reg, rings, now = fed.registry, fed.rings, utcnow()

    def event(
        agency: str, family: str, to: list[str], payload: dict[str, Any], s: str | None = None
    ) -> dict[str, Any]:
        return compose(
            keyring=rings[agency],
            registry=reg,
            event_type=family,
            subject=s or subject("rectification"),
            recipients=to,
            payload=payload,
            now=now,
        )

    issue = {"responsible_unit": "某单位", "problem": "伪造的整改要求", "deadline": "2099-01-01"}
    forged = event("sc-luzhou", "rectification.issued", ["cq-dazu"], issue)
    forged = sign_envelope(forged, rings["cq-jiangjin"].signer(reg, now)[1], forged["sigkeyid"])
    await fed.attack("sc-luzhou", forged, "bad_signature")
    progress("attack: forged signature → rejected")

    posing = event("cq-dazu", "clue.acknowledged", ["sc-zigong"], {"note": "x"}, s=f"notice/{uuid.uuid4()}")
    posing.update(
        type="org.jointbus.rejection.v1",
        data={
            "rejected_event_id": "x",
            "rejected_type": "y",
            "reason": "bad_signature",
            "detail": "fake",
        },
    )
    kid, key = rings["cq-dazu"].signer(reg, now)
    await fed.attack("cq-dazu", sign_envelope(posing, key, kid), "not_authorized")
    progress("attack: agency posing as the router → rejected")

    original = event("sc-yibin", "rectification.issued", ["cq-yongchuan"], issue)
    await (await fed.pubs["sc-yibin"].send_wire(to_wire(original), original["subject"]))
    await fed.wait_for("cq-yongchuan", lambda d: d.id == original["id"])
    await fed.attack("sc-yibin", original, "duplicate")
    progress("attack: replayed event → rejected")

    s = subject("clue")
    await fed.send(
        "sc-luzhou",
        "clue.transferred",
        s,
        ["cq-rongchang"],
        {
            "title": "荣昌某项目围标串标",
            "summary": "举报材料",
            "allegations": ["围标串标"],
            "persons": [{"name": "孙某", "unit": "荣昌某公司"}],
            "jurisdiction_basis": "荣昌区管理",
            "acknowledge_by": china_today().isoformat(),
        },
    )
    await fed.send("cq-rongchang", "clue.acknowledged", s, ["sc-luzhou"], {"note": "已收到"})
    early = event(
        "cq-rongchang",
        "clue.disposition_reported",
        ["sc-luzhou"],
        {"disposition": "closed_other", "summary": "未受理即报结"},
        s=s,
    )
    await fed.attack("cq-rongchang", early, "bad_transition")
    progress("attack: disposition of a clue never accepted → rejected")

    late = {**issue, "deadline": (china_today() - timedelta(days=1)).isoformat()}
    await fed.attack(
        "sc-yibin", event("sc-yibin", "rectification.issued", ["sc-zigong"], late), "bad_transition"
    )
    progress("attack: rectification whose deadline has already passed → rejected")

    wrong = event("cq-jiangjin", "rectification.issued", ["sc-zigong"], issue)
    wrong["recipients"] = ["sc-chengdu"]
    kid, key = rings["cq-jiangjin"].signer(reg, now)
    await fed.attack("cq-jiangjin", sign_envelope(wrong, key, kid), "unknown_recipient")
    progress("attack: unknown recipient → rejected")


# ------------------------------------------------------------------------------ plumbing
def reset_demo_state(cfg: Settings, broker: LocalBroker) -> None:
    """A demo starts from nothing: stop its broker, delete its data, keys and worker state."""
    broker.stop()
    for part in ("broker", "keys", "worker", "inbox", "audit"):
        shutil.rmtree(cfg.home / part, ignore_errors=True)


def start_worker(cfg: Settings) -> WorkerProcess:
    """`jointbus worker` in the background with the demo's deadlines; waits until ready."""
    return WorkerProcess(
        cfg.home,
        cfg.bootstrap_servers,
        JOINTBUS_ACK_DEADLINE_SECONDS=str(ACK_DEADLINE),
        JOINTBUS_DEADLINE_SCAN_SECONDS="1",
        JOINTBUS_SECURITY_PROTOCOL=cfg.security_protocol,
    ).start()


async def scenario(cfg: Settings, registry: Registry, rings: dict[str, Keyring]) -> Federation:
    """Play the whole story; returns the federation with what it expected."""
    acts = [play_governance, play_clues, play_joint_check, play_rectifications, play_attacks]
    async with Federation(cfg, registry, rings) as fed:
        with Progress(console=ui.out, transient=False) as bar:
            task = bar.add_task("scenario", total=36)

            def progress(what: str) -> None:
                bar.update(task, advance=1, description=what[:60])
                bar.console.print(f"  {what}")

            # the acts run concurrently, as the agencies would
            await asyncio.gather(*(act(fed, progress) for act in acts))
            bar.update(task, completed=36, description="scenario complete")
        await asyncio.sleep(1.0)  # let the last receipts be routed
    return fed


async def all_decided(cfg: Settings, registry: Registry, within: float = 60.0) -> int:
    """Wait (bounded) until every outbox record has its decision in the audit log (the last
    receipts are still being routed when the scenario ends); returns the records decided."""
    from audit.completeness import outbox_records
    from streams.security import AUDITOR
    from streams.topics import AUDIT_TOPIC, outbox

    kw = kafka_kwargs(cfg, AUDITOR)
    deadline = time.monotonic() + within
    while True:
        outboxes = await outbox_records(
            cfg.bootstrap_servers, [outbox(a) for a in sorted(registry.agency_ids)], **kw
        )
        wanted = {f"{stream}:{offset}" for stream, rows in outboxes.items() for offset, _, _ in rows}
        decided = {
            key.decode() async for _, key, _ in read_topic(cfg.bootstrap_servers, AUDIT_TOPIC, **kw) if key
        }
        if wanted <= decided:
            return len(wanted)
        if time.monotonic() > deadline:
            raise JointbusError(
                f"{len(wanted - decided)} outbox records still undecided after {within:.0f} s",
                reason="demo_failed",
            )
        await asyncio.sleep(0.5)


def verify_and_replay(cfg: Settings, registry: Registry) -> tuple[str, Projection]:
    """`audit verify` (with completeness) and `audit replay` of the live log, in-process."""
    from jointbus.auditcli import _verify_complete

    replay = Projection(registry.agencies)
    _, report, complete = asyncio.run(_verify_complete(cfg, registry, 0.0, replay))
    d = report.decisions
    return (
        f"audit verify: OK — {report.leaves} leaves ({d['accepted']} accepted, {d['rejected']} "
        f"rejected, {d['emitted']} alerts), {report.checkpoints} signed checkpoints match, "
        f"root {report.root.hex()[:16]}…; complete: {complete.decided} of {complete.positions} "
        "outbox records decided exactly once"
    ), replay


def run_demo(cfg: Settings, *, keep_running: bool = True) -> None:
    """The main job; leaves the broker running for exploration unless told otherwise."""
    broker = LocalBroker(cfg.broker_dir, cfg.broker_port, heap=cfg.broker_heap)
    if cfg.uses_local_broker:
        reset_demo_state(cfg, broker)
    registry, rings = new_federation(utcnow() - timedelta(days=1))
    ui.say(
        f"[1/6] development federation: {len(registry.agencies)} agencies + router and audit keys"
        + (", Kafka credentials for each principal" if cfg.secure else "")
    )
    for ring in rings.values():
        keystore.save_keyring(cfg.keystore_dir, ring)
    keystore.save_registry(cfg.keystore_dir, registry)
    if cfg.uses_local_broker:
        mode = "SASL/SCRAM-SHA-512 + ACLs" if cfg.secure else "PLAINTEXT (asked for)"
        ui.say(f"[2/6] fresh embedded Kafka in {cfg.home}, {mode} (previous demo state removed)")
        if cfg.secure:
            ensure_credentials(cfg.credentials_dir, [ADMIN])  # the broker is formatted with it
        broker = local_broker(cfg)
        broker.start()
    else:
        ui.say(f"[2/6] using the existing cluster at {cfg.bootstrap_servers}")
    asyncio.run(provision(cfg, registry))  # topics; secured: every principal's user, the ACLs
    ui.say(
        f"[3/6] worker (router + deadlines; clue acknowledgement deadline {ACK_DEADLINE:.0f}s) "
        "and audit agent starting"
    )
    worker = start_worker(cfg)
    auditor = AuditProcess(cfg.home, cfg.bootstrap_servers, JOINTBUS_SECURITY_PROTOCOL=cfg.security_protocol)
    try:
        auditor.start()
        ui.say("[4/6] scenario")
        began = time.monotonic()
        fed = asyncio.run(scenario(cfg, registry, rings))
        asyncio.run(all_decided(cfg, registry))
        ui.say(
            f"scenario played in {time.monotonic() - began:.1f}s: "
            f"{len(fed.expected.rejections)} hostile events rejected as expected, "
            f"{len(fed.expected.overdue)} overdue items alerted"
        )
    finally:
        worker.stop()
        auditor.stop()  # signs a final checkpoint over everything routed
    observed = fed.observed()
    ui.say("[5/6] summary, as the agencies' own inboxes saw it")
    print_projection(observed, as_json=False, title="demo summary")
    summary = {"agencies": observed.rows()}
    (cfg.home / "demo-summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2))
    ui.say("[6/6] the audit log")
    verdict, replay = verify_and_replay(cfg, registry)
    ui.say(verdict)
    same = replay.rows() == observed.rows()
    ui.say(
        "replay of the audit log reproduces the summary above: "
        + ("yes, exactly" if same else "[bold red]NO[/]")
    )
    if not keep_running and cfg.uses_local_broker:
        broker.stop()
    elif cfg.uses_local_broker:
        ui.say(
            f"the broker keeps running at {broker.bootstrap}: try `.venv/bin/jointbus status`, "
            "`.venv/bin/jointbus inbox --agency cq-yongchuan`, `.venv/bin/jointbus audit verify`; "
            "stop it with `.venv/bin/jointbus broker stop`"
        )
    if not same:
        raise JointbusError("the audit replay differs from what the agencies saw", reason="demo_failed")
