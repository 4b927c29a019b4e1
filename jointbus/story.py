"""The demo's story among the eight agencies: clues transferred across the Sichuan–Chongqing
border and handled to disposition, a joint check of the Xiangjiaba irrigation district's
northern main canal, rectifications from its findings, the joint meeting, the chair passed
on and mechanisms adopted. Dates are China Standard Time dates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from jointbus.federation import ACK_DEADLINE, Federation, overdue_of, subject
from jointbus.schemas.deadlines import china_date
from jointbus.schemas.governance import ChairPassed
from jointbus.schemas.ids import utcnow

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
    """Joint meeting under the rotating chair, the chair passed on by the members' decision
    (a registry change, live), mechanisms established by the new chair, a bulletin."""
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
    # the meeting agrees the chair passes to sc-yibin: a registry change, live, by a majority
    passed = await fed.govern(
        "cq-rongchang",
        [ChairPassed(chair="sc-yibin")],
        ["sc-zigong", "sc-luzhou", "sc-neijiang", "cq-yongchuan"],
        "联席会议决定：轮值主席由荣昌区交接至宜宾市",
    )
    progress(f"registry v{passed.version} in force: the chair passed to {passed.chair} by 5 of 8 agencies")
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
    await fed.send(
        "sc-yibin",
        "bulletin.posted",
        subject("bulletin"),
        all_but(fed, "sc-yibin"),
        {
            "title": "关于下一轮交叉检查人员互派的安排",
            "body": "请各单位于一周内报送参加交叉检查的人员名单及联系方式。",
            "category": "arrangement",
            "reply_by": (today + timedelta(days=7)).isoformat(),
        },
    )
    progress("joint meeting held; 3 mechanisms established by the new chair; 1 bulletin posted")
