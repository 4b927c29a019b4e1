"""The gateway's HTTP/JSON shapes: requests are closed (unknown fields refused), answers are
what the OpenAPI document (docs/gateway-openapi.json) promises."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jointbus.schemas.ids import UUID_PATTERN

AgencyId = Annotated[str, Field(pattern=r"^[a-z]{2}-[a-z]{2,20}$", examples=["sc-luzhou"])]
EventId = Annotated[str, Field(pattern=UUID_PATTERN)]


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PublishRequest(Closed):
    """An event to sign, seal (when its type is sensitive) and publish as this agency."""

    type: Annotated[
        str,
        Field(
            min_length=3,
            max_length=120,
            description="a family (`clue.transferred`: its newest version) or a full type name",
            examples=["clue.transferred"],
        ),
    ]
    subject: Annotated[
        str | None,
        Field(
            pattern=r"^[a-z]+/[A-Za-z0-9._-]{1,80}$",
            description="the aggregate (`clue/<uuid>`); omitted: a new one of the type's kind",
        ),
    ] = None
    to: Annotated[list[AgencyId], Field(min_length=1, max_length=16, description="the recipients")]
    data: Annotated[dict[str, Any], Field(description="the payload, as the catalog's JSON Schema says")]
    causation: Annotated[EventId | None, Field(description="the event this one answers")] = None
    correlation: Annotated[EventId | None, Field(description="the conversation it belongs to")] = None


class ProposalRequest(Closed):
    """A registry change proposed by this agency (signed at the gateway's clock, so the new
    version's digest matches the event's time)."""

    changes: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=32)]
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class ReceiptInfo(BaseModel):
    recipient: str
    status: str
    reason: str | None = None
    time: str
    receipt_id: str


class EventStatus(BaseModel):
    """What became of an event this agency published through the gateway."""

    id: str
    type: str
    subject: str
    time: str
    recipients: list[str]
    state: Literal["pending", "published"] = Field(
        description="`published` once the broker acknowledged it (acks=all)"
    )
    decision: Literal["pending", "accepted", "rejected"] = Field(description="the router's signed answer")
    reason: str | None = Field(None, description="the reason code of a rejection")
    detail: str | None = None
    delivered_to: list[str] = []
    receipts: list[ReceiptInfo] = []
    replayed: bool = Field(False, description="true when an Idempotency-Key answered an earlier request")


class InboxItem(BaseModel):
    """One delivery: verified end to end, opened when sealed, in this gateway's order."""

    cursor: int = Field(description="its place in this gateway's inbox; `after=` and SSE ids use it")
    id: str
    type: str
    family: str
    sender: str
    subject: str
    time: str
    recipients: list[str]
    correlation: str
    causation: str | None = None
    sealed: bool
    data: dict[str, Any] = Field(description="the payload (opened, when it travelled sealed)")
    envelope: dict[str, Any] = Field(description="the signed envelope as it travelled")
    acked_at: str | None = Field(None, description="when an internal system acknowledged it")
    receipt_id: str | None = Field(None, description="the signed receipt sent on acknowledgement")


class InboxPage(BaseModel):
    items: list[InboxItem]
    next_cursor: int = Field(description="pass as `after` for the next page")


class AckAnswer(BaseModel):
    id: str
    acked_at: str
    receipt_id: str | None = Field(None, description="none for types that are not answered by receipts")


class HistoryEntry(BaseModel):
    id: str
    type: str
    direction: Literal["sent", "received"]
    sender: str
    recipients: list[str]
    time: str
    decision: str
    reason: str | None = None
    causation: str | None = None
    correlation: str | None = None
    data: dict[str, Any] = Field(
        description="the payload: empty for a sealed event this agency sent, and for a caller "
        "without the `inbox` scope"
    )


class AggregateView(BaseModel):
    """A clue, joint check or rectification as this agency saw it."""

    subject: str
    kind: str
    status: str | None
    state: dict[str, Any] | None
    partial: bool = Field(description="true when steps of it were not addressed to this agency")
    history: list[HistoryEntry]


class AgencyInfo(BaseModel):
    id: str
    name_zh: str
    name_en: str


class RegistryInfo(BaseModel):
    version: int
    digest: str
    chair: str | None
    agencies: list[AgencyInfo]


class Health(BaseModel):
    agency: str
    inbox_reader: Literal["running", "stopped"]
    registry_version: int


class Problem(BaseModel):
    """Every refusal: a stable reason code, a readable detail, the field at fault if any."""

    reason: str = Field(examples=["schema"])
    detail: str
    field: str | None = None
    retriable: bool = False
