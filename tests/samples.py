"""A valid example payload for every current event family (Sichuan–Chongqing material)."""

from __future__ import annotations

from typing import Any

SAMPLES: dict[str, dict[str, Any]] = {
    "clue.transferred": {
        "title": "自永高速（自贡段）某标段项目经理涉嫌违规分包",
        "summary": "群众反映该标段项目经理将主体工程违规分包给其亲属控制的公司。",
        "persons": [{"name": "李某", "position": "项目经理", "unit": "永川某路桥公司"}],
        "allegations": ["违规分包主体工程", "利用职务便利为亲属谋利"],
        "jurisdiction_basis": "被反映人系永川区管理的国有企业干部",
        "evidence_refs": ["doc:zg-2026-0113"],
        "urgency": "urgent",
        "acknowledge_by": "2026-12-02",
    },
    "clue.acknowledged": {"note": "已收到，正在登记"},
    "clue.accepted": {"handling_department": "第三监督检查室", "expected_by": "2027-02-28"},
    "clue.returned": {"reason": "not_our_jurisdiction", "explanation": "被反映人已调任江津区"},
    "clue.disposition_reported": {
        "disposition": "case_opened",
        "summary": "经初步核实，已立案审查调查",
    },
    "jointcheck.invited": {
        "project": {
            "name": "向家坝灌区北总干渠",
            "location": "宜宾—自贡—内江",
            "kind": "irrigation",
        },
        "scope": "工程质量、资金使用与征地补偿",
        "start_date": "2026-12-07",
        "end_date": "2026-12-18",
        "staff_requested": {"sc-zigong": 2, "sc-neijiang": 2},
        "respond_by": "2026-12-01",
    },
    "jointcheck.responded": {"accepted": True, "staff": [{"name": "王某", "role": "检查组员"}]},
    "jointcheck.findings_reported": {
        "findings": [
            {
                "finding_id": "F-1",
                "category": "工程质量",
                "description": "渠道衬砌混凝土强度不达标",
                "severity": "high",
                "responsible_unit": "某水利工程局",
            }
        ]
    },
    "rectification.issued": {
        "responsible_unit": "某水利工程局",
        "problem": "渠道衬砌混凝土强度不达标",
        "deadline": "2027-01-31",
        "source_check": "jointcheck/0195",
        "source_finding": "F-1",
    },
    "rectification.progress_reported": {"percent_complete": 60, "note": "已返工 3.2 公里"},
    "rectification.completion_reported": {"summary": "返工完成并经第三方检测合格"},
    "rectification.verified": {"note": "经现场核查，同意销号"},
    "rectification.reopened": {"reason": "抽检仍有两段不合格", "new_deadline": "2027-03-15"},
    "receipt": {
        "event_id": "01950c2a-0000-7000-8000-000000000001",
        "event_type": "org.jointbus.clue.transferred.v2",
        "status": "opened",
    },
    "meeting.held": {
        "chair": "cq-rongchang",
        "held_on": "2026-11-20",
        "attendees": ["cq-rongchang", "sc-neijiang", "cq-dazu"],
        "topics": ["长江十年禁渔联合监督", "跨界河流污染治理"],
    },
    "chair.rotated": {
        "new_chair": "sc-yibin",
        "term_start": "2027-01-01",
        "term_end": "2027-06-30",
    },
    "mechanism.established": {
        "title": "干部交叉检查人员互派机制",
        "kind": "staff exchange",
        "participants": ["sc-zigong", "cq-yongchuan"],
        "effective_from": "2026-12-01",
    },
    "rejection": {
        "rejected_event_id": "01950c2a-0000-7000-8000-000000000009",
        "rejected_type": "org.jointbus.clue.transferred.v2",
        "reason": "bad_signature",
        "detail": "signature does not verify",
    },
    "deadline.overdue": {
        "aggregate": "clue/0195",
        "what": "clue_not_acknowledged",
        "deadline": "2026-12-02",
        "responsible": "cq-yongchuan",
    },
}
