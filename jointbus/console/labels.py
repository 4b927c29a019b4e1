"""Chinese and English labels of the console's pages; agency names come from the registry."""

from __future__ import annotations

from collections.abc import Callable

from jointbus.schemas.registry import Registry

LANGUAGES = ("zh", "en")

#: page words: key -> (Chinese, English)
WORDS: dict[str, tuple[str, str]] = {
    "console": ("川渝纪检监察协作 审计控制台", "jointbus audit console"),
    "overview": ("概览", "Overview"),
    "flow": ("线索流向", "Clue flow"),
    "deadlines": ("办理时限", "Deadlines"),
    "log": ("审计日志", "The log"),
    "agency": ("单位", "Agency"),
    "collaboration": ("协作整体", "(collaboration)"),
    "period": ("期间", "Period"),
    "since": ("起", "since"),
    "until": ("止", "until"),
    "apply": ("查询", "Apply"),
    "records": ("审计记录", "audit records"),
    "live": ("实时更新", "live"),
    "offline": ("连接中断，重试中", "disconnected, retrying"),
    "series": ("按日统计（中国标准时间）", "per day (China Standard Time)"),
    "pairs": ("单位之间的未办结事项与超限拒收", "Who holds whom busy"),
    "pairs_note": (
        "超限拒收（too_many_open）记在发送方，不记在接收方。",
        "Events refused too_many_open are the sender's doing, never the recipient's.",
    ),
    "pair_open": ("未办结", "open"),
    "pair_refused": ("超限拒收", "refused too_many_open"),
    "no_charts": (
        "图表库未安装（运行 make charts）；数字照常显示。",
        "The charting library is not installed (run make charts); the figures are shown as usual.",
    ),
    "from": ("移送方", "from"),
    "to": ("接收方", "to"),
    "clues": ("线索", "clues"),
    "outcome": ("办理结果", "outcome"),
    "clue_accepted": ("已受理（办理中）", "accepted (in hand)"),
    "clue_returned": ("已退回", "returned"),
    "clue_disposed": ("已处置", "disposed"),
    "clue_open": ("待确认或受理", "awaiting acknowledgement or acceptance"),
    "open_items": ("未办结事项", "Open items"),
    "overdue_alerts": ("逾期提醒", "Overdue alerts"),
    "age": ("时长", "age"),
    "days": ("天", "days"),
    "kind": ("类别", "kind"),
    "subject": ("事项", "subject"),
    "status": ("状态", "status"),
    "holders": ("承办单位", "held by"),
    "opened": ("开始", "opened"),
    "overdue": ("逾期", "overdue"),
    "what": ("事由", "what"),
    "deadline": ("期限", "deadline"),
    "responsible": ("责任单位", "responsible"),
    "time": ("时间", "time"),
    "type": ("事件类型", "type"),
    "sender": ("发送方", "sender"),
    "recipients": ("接收方", "recipients"),
    "decision": ("裁决", "decision"),
    "reason": ("原因", "reason"),
    "delivered": ("已送达", "delivered to"),
    "notice": ("回执通知", "notice"),
    "causation": ("起因事件", "caused by"),
    "correlation": ("会话", "conversation"),
    "caused": ("引发的事件", "events it caused"),
    "event": ("事件", "event"),
    "payload": ("内容", "content"),
    "sealed": ("已加密（控制台不显示内容）", "sealed (the console never shows it)"),
    "not_shown": ("不显示", "not shown"),
    "proof": ("下载包含证明", "download inclusion proof"),
    "history": ("事项历史", "history"),
    "figure": ("数字的构成", "what makes up the figure"),
    "checkpoints": ("签名检查点", "signed checkpoints"),
    "size": ("叶子数", "leaves"),
    "root": ("根哈希", "root"),
    "witnesses": ("见证人", "witnesses"),
    "verify": ("校验整个日志", "Verify the whole log"),
    "verify_idle": ("尚未校验", "not verified yet"),
    "no_events": ("没有事件", "no events"),
    "open_list": ("未办结事项（按当前状态）", "open items (by their current state)"),
    "position": ("位置", "position"),
}

#: figure columns (``schemas.projections.COLUMNS``): column -> (Chinese, English)
COLUMNS: dict[str, tuple[str, str]] = {
    "clues_transferred": ("移送线索", "clues transferred"),
    "clues_received": ("接收线索", "clues received"),
    "clues_accepted": ("受理线索", "clues accepted"),
    "clues_returned": ("退回线索", "clues returned"),
    "clues_disposed": ("处置线索", "clues disposed"),
    "clues_open": ("未办结线索", "clues open"),
    "checks_convened": ("牵头联合检查", "checks convened"),
    "checks_joined": ("参与联合检查", "checks joined"),
    "findings_reported": ("报告发现问题", "findings reported"),
    "rect_issued": ("发出整改", "rectifications issued"),
    "rect_completed": ("整改完成", "rectifications completed"),
    "rect_verified": ("整改销号", "rectifications verified"),
    "rect_reopened": ("整改重启", "rectifications reopened"),
    "rect_open": ("未销号整改", "rectifications open"),
    "overdue": ("逾期", "overdue"),
    "meetings_chaired": ("主持联席会议", "meetings chaired"),
    "mechanisms": ("建立机制", "mechanisms"),
    "bulletins_posted": ("协作通报", "bulletins posted"),
    "registry_proposals": ("治理提议", "registry proposals"),
    "rejected": ("被拒绝事件", "events rejected"),
}

#: item states and clue outcomes
STATES: dict[str, tuple[str, str]] = {
    "transferred": ("已移送", "transferred"),
    "acknowledged": ("已确认收到", "acknowledged"),
    "accepted": ("已受理", "accepted"),
    "returned": ("已退回", "returned"),
    "disposed": ("已处置", "disposed"),
    "undeliverable": ("无法送达", "undeliverable"),
    "open": ("整改中", "open"),
    "completed": ("已完成待销号", "completed"),
    "verified": ("已销号", "verified"),
    "reopened": ("重启整改", "reopened"),
    "rejected": ("已拒绝", "rejected"),
    "emitted": ("系统提醒", "alert"),
    "quarantined": ("已隔离", "quarantined"),
}


def language(asked: str | None) -> str:
    """The language of a request: ``zh`` unless ``en`` was asked for."""
    return asked if asked in LANGUAGES else "zh"


def translator(lang: str, registry: Registry) -> Callable[[str], str]:
    """``t(key)``: the label of a word, column, state or member agency id in ``lang``
    (an unknown key is shown as itself)."""
    which = LANGUAGES.index(language(lang))

    def t(key: str) -> str:
        for table in (WORDS, COLUMNS, STATES):
            if key in table:
                return table[key][which]
        if key in registry.agency_ids:
            member = registry.member(key)
            return member.name_zh if which == 0 else member.name_en
        return key

    return t
