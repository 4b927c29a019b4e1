"""The agency gateway over real HTTP (uvicorn on a free loopback port) and the real broker:
publish, inbox pages and SSE, resume after a restart, idempotent retries, receipts on
acknowledgement, rejections, aggregates, webhooks and the refusals of its access rules."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jointbus.gateway.cli import OPENAPI_FILE, openapi_text
from jointbus.gateway.client import GatewayClient
from jointbus.gateway.errors import GatewayError
from jointbus.gateway.service import gateway_dir
from jointbus.gateway.tokens import Tokens
from jointbus.gateway.webhook import check_signature
from jointbus.processes import GatewayProcess
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.ids import utcnow
from jointbus.streams.broker import free_port
from jointbus.streams.clients import readable_partitions
from jointbus.streams.settings import Settings
from jointbus.streams.topics import outbox
from tests.conftest import Bus
from tests.harness import eventually, run_jointbus

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[1]
SENDER, RECIPIENT = "sc-luzhou", "cq-rongchang"


def clue(title: str = "荣昌某项目围标串标") -> dict[str, Any]:
    """A clue transfer's payload (sealed on the bus: it names a person)."""
    return {
        "title": title,
        "summary": "举报材料",
        "allegations": ["围标串标"],
        "persons": [{"name": "孙某", "unit": "荣昌某公司"}],
        "jurisdiction_basis": "荣昌区管理",
        "acknowledge_by": (utcnow() + timedelta(days=3)).date().isoformat(),
    }


@dataclass
class Running:
    """A gateway process and one token of each scope set the tests use."""

    proc: GatewayProcess
    token: str

    @property
    def url(self) -> str:
        return self.proc.url

    def client(self) -> GatewayClient:
        return GatewayClient(self.url, self.token)


def start_gateway(bus: Bus, agency: str, *extra: str, port: int | None = None, **env: str) -> Running:
    token = Tokens(gateway_dir(Settings(home=bus.home), agency) / "tokens.json").add("case-system")
    proc = GatewayProcess(bus.home, bus.bootstrap, agency, port or free_port(), *extra, **env).start()
    return Running(proc, token)


@pytest.fixture(scope="module")
def gateways(bus: Bus) -> Iterator[dict[str, Running]]:
    """The sender's and the recipient's gateways, running for the whole module."""
    running = {a: start_gateway(bus, a) for a in (SENDER, RECIPIENT)}
    yield running
    for r in running.values():
        r.proc.stop()


async def records_holding(bootstrap: str, topic: str, text: str) -> int:
    """How many records of ``topic`` (every partition, to its end now) contain ``text``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await readable_partitions(consumer, topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found = 0
        async with asyncio.timeout(30):
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found += sum(1 for r in records if text.encode() in r.value)
        return found
    finally:
        await consumer.stop()


async def inbox_ids(client: GatewayClient) -> list[str]:
    """Every event id in a gateway's inbox, in its order (all pages)."""
    ids, after = [], 0
    while True:
        page = await client.inbox(after=after, limit=500)
        ids += [item["id"] for item in page["items"]]
        if not page["items"]:
            return ids
        after = page["next_cursor"]


async def delivered(client: GatewayClient, event_id: str, within: float = 30.0) -> dict[str, Any]:
    """The inbox item ``event_id`` once the gateway stored it (bounded)."""

    async def probe() -> dict[str, Any] | None:
        try:
            return await client.inbox_item(event_id)
        except GatewayError as exc:
            if exc.status != 404:
                raise
            return None

    return await eventually(probe, within=within, what=f"{event_id} in the gateway's inbox")


async def test_published_clue_reaches_recipient_inbox_and_stream(gateways: dict[str, Running]) -> None:
    """A clue POSTed to the sender's gateway is signed, sealed, routed and delivered: the
    recipient's gateway lists it opened in its inbox and streams it over SSE; the sender sees
    the router's acceptance."""
    async with gateways[SENDER].client() as sender, gateways[RECIPIENT].client() as recipient:
        sent = await sender.publish("clue.transferred", [RECIPIENT], clue(), wait=20)
        assert sent["state"] == "published"
        assert sent["decision"] == "accepted", sent
        assert sent["delivered_to"] == [RECIPIENT]
        item = await delivered(recipient, sent["id"])
        assert item["sealed"] is True
        assert item["data"]["persons"] == [{"name": "孙某", "unit": "荣昌某公司"}]
        assert item["sender"] == SENDER
        assert item["subject"] == sent["subject"]

        async def first_streamed() -> dict[str, Any]:
            async for streamed in recipient.stream(last_event_id=str(item["cursor"] - 1)):
                return streamed
            raise AssertionError("the stream ended")

        streamed = await asyncio.wait_for(first_streamed(), 20)
        assert streamed["id"] == sent["id"]
        assert streamed["data"] == item["data"]


async def test_receipt_is_sent_when_the_system_acknowledges(gateways: dict[str, Running]) -> None:
    """Reading is not receiving: the sender sees no receipt until the recipient's system
    acknowledges the delivery; then one signed receipt (opened), however often it acks."""
    async with gateways[SENDER].client() as sender, gateways[RECIPIENT].client() as recipient:
        sent = await sender.publish("clue.transferred", [RECIPIENT], clue(), wait=20)
        await delivered(recipient, sent["id"])
        await asyncio.sleep(1.0)  # time a receipt sent on reading would have needed
        assert (await sender.event(sent["id"]))["receipts"] == []
        first = await recipient.ack(sent["id"])
        again = await recipient.ack(sent["id"])
        assert first["receipt_id"]
        assert again["receipt_id"] == first["receipt_id"]

        async def receipted() -> list[dict[str, Any]] | None:
            receipts: list[dict[str, Any]] = (await sender.event(sent["id"]))["receipts"]
            return receipts or None

        receipts = await eventually(receipted, within=30, what="the recipient's receipt at the sender")
        assert [(r["recipient"], r["status"], r["receipt_id"]) for r in receipts] == [
            (RECIPIENT, "opened", first["receipt_id"])
        ]
        view = await recipient.aggregate("clues", sent["subject"].split("/", 1)[1])
        assert view["status"] == "transferred"
        assert next(h["type"] for h in view["history"]).startswith("org.jointbus.clue.transferred")


async def test_idempotent_retry_publishes_once(bus: Bus, gateways: dict[str, Running]) -> None:
    """A POST retried with the same Idempotency-Key answers the same event and puts one
    record on the outbox; the same key with another body is a 409."""
    key = str(uuid.uuid4())
    async with gateways[SENDER].client() as sender:
        first = await sender.publish("clue.transferred", [RECIPIENT], clue("重试"), idempotency_key=key)
        retried = await sender.publish("clue.transferred", [RECIPIENT], clue("重试"), idempotency_key=key)
        assert retried["id"] == first["id"]
        assert retried["replayed"] is True
        with pytest.raises(GatewayError) as refused:
            await sender.publish("clue.transferred", [RECIPIENT], clue("另一条"), idempotency_key=key)
        assert (refused.value.status, refused.value.reason) == (409, "idempotency_mismatch")
    copies = await records_holding(bus.bootstrap, outbox(SENDER), first["id"])
    assert copies == 1


async def test_rejection_notice_appears_at_the_events_status(gateways: dict[str, Running], bus: Bus) -> None:
    """A pre-signed envelope that breaks a lifecycle rule (accepting a clue never
    transferred) is forwarded as it is, and the router's rejection shows at
    GET /v1/events/{id} with its reason code; a forged one never leaves the gateway."""
    ring, registry = bus.rings[RECIPIENT], bus.registry
    envelope = compose(
        keyring=ring, registry=registry, event_type="clue.accepted", subject=f"clue/{uuid.uuid4()}",
        recipients=[SENDER], payload={"handling_department": "第一监督检查室"},
    )  # fmt: skip
    async with gateways[RECIPIENT].client() as recipient:
        forwarded = await recipient.forward(to_wire(envelope))
        assert forwarded["id"] == envelope["id"]
        status = await recipient.event(envelope["id"], wait=20)
        assert (status["decision"], status["reason"]) == ("rejected", "bad_transition")
        forged = dict(envelope, id=str(uuid.uuid4()))
        with pytest.raises(GatewayError) as refused:
            await recipient.forward(to_wire(forged))
        assert (refused.value.status, refused.value.reason) == (422, "bad_signature")
        posing = compose(
            keyring=bus.rings[SENDER], registry=registry, event_type="clue.accepted",
            subject=f"clue/{uuid.uuid4()}", recipients=[RECIPIENT], payload={"handling_department": "x"},
        )  # fmt: skip
        with pytest.raises(GatewayError) as other:
            await recipient.forward(to_wire(posing))
        assert (other.value.status, other.value.reason) == (403, "not_authorized")


async def test_refusals_name_status_and_reason(gateways: dict[str, Running], bus: Bus) -> None:
    """No token, another gateway's token, a token without the scope, a 5 MB body, a payload
    error and an unknown type are each refused with their status and reason code."""
    url = gateways[SENDER].url
    other_gateways_token = gateways[RECIPIENT].token
    reader_only = Tokens(gateway_dir(Settings(home=bus.home), SENDER) / "tokens.json").add(
        "reports", ("read",)
    )
    body = {"type": "clue.transferred", "to": [RECIPIENT], "data": clue()}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        none = await http.post("/v1/events", json=body)
        assert (none.status_code, none.json()["reason"]) == (401, "unauthenticated")
        assert none.headers["www-authenticate"] == "Bearer"
        foreign = await http.get("/v1/inbox", headers={"Authorization": f"Bearer {other_gateways_token}"})
        assert (foreign.status_code, foreign.json()["reason"]) == (401, "unauthenticated")
        scoped = await http.get("/v1/inbox", headers={"Authorization": f"Bearer {reader_only}"})
        assert (scoped.status_code, scoped.json()["reason"]) == (403, "forbidden")
        auth = {"Authorization": f"Bearer {gateways[SENDER].token}"}
        huge = await http.post(
            "/v1/events", content=b'{"data": "' + b"x" * (5 * 1024 * 1024) + b'"}', headers=auth
        )
        assert (huge.status_code, huge.json()["reason"]) == (413, "too_large")
        bad = await http.post(
            "/v1/events", json={**body, "data": {**clue(), "persons": "孙某"}}, headers=auth
        )
        assert (bad.status_code, bad.json()["reason"], bad.json()["field"]) == (422, "schema", "data.persons")
        unknown = await http.post("/v1/events", json={**body, "type": "clue.stolen"}, headers=auth)
        assert (unknown.status_code, unknown.json()["reason"]) == (422, "unknown_type")
        stranger = await http.post("/v1/events", json={**body, "to": ["xx-nowhere"]}, headers=auth)
        assert (stranger.status_code, stranger.json()["reason"], stranger.json()["field"]) == (
            422,
            "unknown_recipient",
            "to",
        )
        missing = await http.get(f"/v1/events/{uuid.uuid4()}", headers=auth)
        assert (missing.status_code, missing.json()["reason"]) == (404, "not_found")


async def test_hostile_input_is_a_problem_never_a_500(gateways: dict[str, Running], bus: Bus) -> None:
    """What a careless or hostile internal system sends is refused with a status and reason:
    a chunked 5 MB body (413, read no further), malformed JSON without a token (401 before
    the body is read), an integer beyond any JSON canonical form, a lone surrogate, cursors
    past SQLite's integers, an empty Idempotency-Key, an event to oneself or on another
    kind's subject, a pre-signed envelope over 256 KiB (413). Nothing yields a 500."""
    auth = {"Authorization": f"Bearer {gateways[SENDER].token}"}
    body = {
        "type": "bulletin.posted",
        "to": [RECIPIENT],
        "data": {"title": "t", "body": "b", "category": "arrangement"},
    }

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"type": "bulletin.posted", "data": "'
        for _ in range(5):
            yield b"x" * 1024 * 1024
        yield b'"}'

    expectations: list[tuple[httpx.Response, int, str]] = []
    async with httpx.AsyncClient(base_url=gateways[SENDER].url, timeout=30) as http:

        async def post(path: str, status: int, reason: str, **kw: Any) -> None:
            expectations.append((await http.post(path, **kw), status, reason))

        await post("/v1/events", 413, "too_large", content=chunks(), headers=auth)
        await post("/v1/events", 401, "unauthenticated", content=b'{"type":')
        await post("/v1/events", 422, "schema", content=b'{"type":', headers=auth)
        await post("/v1/events", 422, "schema", json={**body, "data": {"x": 10**40}}, headers=auth)
        lone = (
            b'{"type": "bulletin.posted", "to": ["cq-rongchang"], "data": {"title": "\\ud800", "body": "b"}}'
        )
        await post(
            "/v1/events", 422, "schema", content=lone, headers={**auth, "content-type": "application/json"}
        )
        await post("/v1/events", 422, "schema", json=body, headers={**auth, "Idempotency-Key": ""})
        await post("/v1/events", 422, "not_authorized", json={**body, "to": [SENDER]}, headers=auth)
        await post(
            "/v1/events", 422, "bad_transition", json={**body, "subject": "rectification/zz2"}, headers=auth
        )
        envelope = compose(
            keyring=bus.rings[SENDER], registry=bus.registry, event_type="bulletin.posted",
            subject=f"bulletin/{uuid.uuid4()}", recipients=[RECIPIENT],
            payload={"title": "t", "body": "b", "category": "arrangement"},
        )  # fmt: skip
        oversized = to_wire({**envelope, "padding": "x" * 300_000})
        await post("/v1/envelopes", 413, "too_large", content=oversized, headers=auth)
        for after in ("9223372036854775808", "99999999999999999999"):
            expectations.append((await http.get(f"/v1/inbox?after={after}", headers=auth), 422, "schema"))
    for answer, status, reason in expectations:
        assert (answer.status_code, answer.json()["reason"]) == (status, reason), answer.text


async def test_agency_cannot_read_another_agencys_events_through_its_gateway(
    gateways: dict[str, Running], bus: Bus
) -> None:
    """An event addressed to the recipient only is in the recipient's gateway and nowhere
    in the sender's: not in its pages, not by id; the API has no way to name another inbox."""
    async with gateways[SENDER].client() as sender, gateways[RECIPIENT].client() as recipient:
        sent = await sender.publish("clue.transferred", [RECIPIENT], clue("只给荣昌"), wait=20)
        await delivered(recipient, sent["id"])
        assert sent["id"] not in await inbox_ids(sender)
        with pytest.raises(GatewayError) as refused:
            await sender.inbox_item(sent["id"])
        assert (refused.value.status, refused.value.reason) == (404, "not_found")


async def test_restarted_gateway_resumes_stream_with_last_event_id(
    bus: Bus, gateways: dict[str, Running]
) -> None:
    """The recipient's gateway is SIGKILLed while an SSE client reads it and events keep
    coming; restarted on the same port, the client reconnects with Last-Event-ID and has
    every event exactly once."""
    port = free_port()
    third = "cq-yongchuan"
    running = start_gateway(bus, third, port=port)
    published: list[str] = []
    streamed: list[str] = []
    reconnects = 0

    async def read(client: GatewayClient, want: int) -> None:
        """Read the stream, reconnecting with the last id seen whenever it breaks."""
        nonlocal reconnects
        last_id: str | None = None
        while True:
            try:
                async for item in client.stream(last_event_id=last_id):
                    last_id = str(item["cursor"])
                    if item["sender"] == SENDER and item["family"] == "clue.transferred":
                        streamed.append(item["id"])
                    if len(streamed) >= want:
                        return
            except httpx.HTTPError:
                reconnects += 1
                await asyncio.sleep(0.2)

    try:
        async with gateways[SENDER].client() as sender, running.client() as client:
            reader = asyncio.create_task(asyncio.wait_for(read(client, 10), 90))
            for _ in range(5):
                published.append((await sender.publish("clue.transferred", [third], clue()))["id"])
            await eventually(
                lambda: asyncio.sleep(0, len(streamed) >= 5 or None), within=30, what="5 events streamed"
            )
            running.proc.kill()  # SIGKILL mid-stream: no shutdown, no goodbye to the client
            for _ in range(5):  # the recipient's gateway is down; the bus keeps them
                published.append((await sender.publish("clue.transferred", [third], clue()))["id"])
            running.proc = GatewayProcess(bus.home, bus.bootstrap, third, port).start()
            await reader
    finally:
        running.proc.stop()
    assert reconnects >= 1
    assert len(streamed) == len(set(streamed)) == 10  # nothing doubled
    assert set(streamed) == set(published)  # nothing lost (inbox partitions interleave freely)


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """An HTTP receiver that answers 500 to the first three tries of each event, then 204."""
    calls: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: Request) -> Response:
        body = await request.body()
        calls.append((dict(request.headers), body))
        tries = sum(1 for h, _ in calls if h["x-jointbus-event-id"] == request.headers["x-jointbus-event-id"])
        return Response(status_code=500 if tries <= 3 else 204)

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/hook", calls
    server.should_exit = True
    thread.join(timeout=10)


async def test_webhook_failing_three_times_receives_event_on_fourth_try(
    bus: Bus, gateways: dict[str, Running], webhook_receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    """A webhook receiver that fails three times gets the event on the fourth try, signed
    with the shared secret and carrying the event id to deduplicate by."""
    url, calls = webhook_receiver
    secret = "webhook-secret-for-the-test"
    third = "cq-dazu"
    running = start_gateway(bus, third, "--webhook", url, JOINTBUS_WEBHOOK_SECRET=secret)
    try:
        async with gateways[SENDER].client() as sender:
            sent = await sender.publish("clue.transferred", [third], clue("推送"))

        async def fourth_try() -> list[tuple[dict[str, str], bytes]] | None:
            tries = [c for c in calls if c[0]["x-jointbus-event-id"] == sent["id"]]
            return tries if len(tries) >= 4 else None

        tries = await eventually(fourth_try, within=60, what="the fourth webhook try")
    finally:
        running.proc.stop()
    assert [h["x-jointbus-attempt"] for h, _ in tries[:4]] == ["1", "2", "3", "4"]
    headers, body = tries[3]
    assert check_signature(
        secret.encode(), headers["x-jointbus-timestamp"], body, headers["x-jointbus-signature"]
    )
    assert not check_signature(
        b"another secret", headers["x-jointbus-timestamp"], body, headers["x-jointbus-signature"]
    )
    assert json.loads(body)["data"]["title"] == "推送"


def test_openapi_document_is_current_and_valid() -> None:
    """docs/gateway-openapi.json is what the code serves (`jointbus gateway openapi --write`
    rewrites it) and a valid OpenAPI 3.1 document."""
    written = (ROOT / OPENAPI_FILE).read_text()
    assert written == openapi_text(), "run `jointbus gateway openapi --write docs/gateway-openapi.json`"
    validate(json.loads(written))


def test_token_cli_shows_the_token_once_and_keeps_only_its_hash(tmp_path: Path) -> None:
    """`gateway token add` prints the token once; the tokens file holds its hash only, and
    `token list` shows the system without it."""
    env = {**os.environ, "JOINTBUS_HOME": str(tmp_path)}
    added = run_jointbus("gateway", "token", "add", "case-system", "--as", SENDER, env=env)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert token.startswith("jbgw_")
    stored = (tmp_path / "gateway" / SENDER / "tokens.json").read_text()
    assert token not in stored
    assert "case-system" in stored
    listed = run_jointbus("gateway", "token", "list", "--as", SENDER, env=env)
    assert "case-system" in listed.stdout
    assert token not in listed.stdout
    bad = run_jointbus("gateway", "token", "add", "Bad Name", "--as", SENDER, env=env)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "[bad_name]" in bad.stderr


def issue(
    name: str, issuer: tuple[Any, Any] | None, *, ca: bool = False, ip: str | None = None
) -> tuple[Any, Any]:
    """A certificate and key for ``name``, self-signed (``ca``) or signed by ``issuer``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_cert, signer_key = issuer if issuer else (None, key)
    now = utcnow()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_cert.subject if signer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
    return builder.sign(signer_key, hashes.SHA256()), key


def write_pem(folder: Path, name: str, cert: Any, key: Any) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization

    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_mutual_tls_refuses_a_client_without_a_certificate_of_the_agencys_ca(
    bus: Bus, tmp_path: Path
) -> None:
    """With --client-ca, a caller needs a certificate from that CA *and* a token: one with
    a certificate from another CA, or none, fails the TLS handshake; the right one is in."""
    ca = issue("agency CA", None, ca=True)
    rogue_ca = issue("rogue CA", None, ca=True)
    ca_path, _ = write_pem(tmp_path, "ca", *ca)
    server = write_pem(tmp_path, "server", *issue("gateway", ca, ip="127.0.0.1"))
    client = write_pem(tmp_path, "client", *issue("case-system", ca))
    rogue = write_pem(tmp_path, "rogue", *issue("case-system", rogue_ca))
    tls = ("--tls-cert", str(server[0]), "--tls-key", str(server[1]), "--client-ca", str(ca_path))
    running = start_gateway(bus, "sc-neijiang", *tls)
    url = running.url.replace("http://", "https://")
    auth = {"Authorization": f"Bearer {running.token}"}

    def context(cert: tuple[Path, Path] | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(ca_path))
        if cert is not None:
            ctx.load_cert_chain(*cert)
        return ctx

    try:
        async with httpx.AsyncClient(verify=context(client)) as http:
            answer = await http.get(f"{url}/v1/registry", headers=auth)
            assert answer.status_code == 200
            assert (await http.get(f"{url}/v1/registry")).status_code == 401  # the token still counts
        for cert in (None, rogue):
            async with httpx.AsyncClient(verify=context(cert)) as http:
                with pytest.raises(httpx.HTTPError):
                    await http.get(f"{url}/v1/registry", headers=auth)
    finally:
        running.proc.stop()


async def test_read_only_token_cannot_read_an_opened_clue(gateways: dict[str, Running], bus: Bus) -> None:
    """A token with only the ``read`` scope sees a clue's state and history but none of its
    opened content; a token that may read the inbox sees it."""
    async with gateways[SENDER].client() as sender, gateways[RECIPIENT].client() as recipient:
        sent = await sender.publish("clue.transferred", [RECIPIENT], clue("只读令牌"), wait=20)
        await delivered(recipient, sent["id"])
        ident = sent["subject"].split("/", 1)[1]
        full = await recipient.aggregate("clues", ident)
        reports = Tokens(gateway_dir(Settings(home=bus.home), RECIPIENT) / "tokens.json").add(
            "reports", ("read",)
        )
        async with GatewayClient(gateways[RECIPIENT].url, reports) as reader:
            view = await reader.aggregate("clues", ident)
    assert full["history"][0]["data"]["title"] == "只读令牌"
    assert view["status"] == full["status"] == "transferred"
    assert [h["data"] for h in view["history"]] == [{}]
    assert "只读令牌" not in json.dumps(view, ensure_ascii=False)


async def test_removed_token_ends_its_open_stream_and_streams_are_bounded(
    gateways: dict[str, Running], bus: Bus
) -> None:
    """A system holds at most 8 event streams (the 9th is a 429); removing its token ends
    every stream it holds within seconds, before anything published later reaches it."""
    tokens = Tokens(gateway_dir(Settings(home=bus.home), RECIPIENT) / "tokens.json")
    streamer = tokens.add("streamer", ("inbox",))
    url = f"{gateways[RECIPIENT].url}/v1/inbox/stream"
    headers = {"Authorization": f"Bearer {streamer}"}
    async with httpx.AsyncClient(timeout=30) as http:
        last = 0
        async with GatewayClient(gateways[RECIPIENT].url, gateways[RECIPIENT].token) as recipient:
            while page := (await recipient.inbox(after=last, limit=500))["items"]:
                last = page[-1]["cursor"]
        held = [
            await http.send(
                http.build_request("GET", url, headers={**headers, "Last-Event-ID": str(last)}), stream=True
            )
            for _ in range(8)
        ]
        assert [r.status_code for r in held] == [200] * 8
        ninth = await http.get(url, headers=headers)
        assert (ninth.status_code, ninth.json()["reason"]) == (429, "too_many_streams")
        tokens.remove("streamer")

        async def ended(answer: httpx.Response) -> str:
            return b"".join([chunk async for chunk in answer.aiter_bytes()]).decode()

        leftovers = await asyncio.wait_for(asyncio.gather(*(ended(r) for r in held)), 15)
        async with gateways[SENDER].client() as sender:
            later = await sender.publish("clue.transferred", [RECIPIENT], clue("撤销令牌后"), wait=20)
        assert all(later["id"] not in text for text in leftovers)
        again = await http.get(url, headers=headers)
        assert again.status_code == 401


async def test_a_system_over_its_request_rate_is_told_when_to_retry(bus: Bus) -> None:
    """With --rate 0.1 --burst 2, a system's third call in a row is a 429 ``rate_limited``
    with Retry-After, refused before anything else is looked at; another system is
    unaffected. (A tenth of a token a second: however slow the machine, no refill counts.)"""
    running = start_gateway(bus, "sc-yibin", "--rate", "0.1", "--burst", "2")
    other = Tokens(gateway_dir(Settings(home=bus.home), "sc-yibin") / "tokens.json").add("reports", ("read",))
    path = f"/v1/events/{uuid.uuid4()}"  # a cheap 404 while the rate allows
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as http:
            auth = {"Authorization": f"Bearer {running.token}"}
            answers = [await http.get(path, headers=auth) for _ in range(3)]
            elsewhere = await http.get(path, headers={"Authorization": f"Bearer {other}"})
    finally:
        running.proc.stop()
    assert [a.status_code for a in answers] == [404, 404, 429]
    assert answers[2].json()["reason"] == "rate_limited"
    assert answers[2].json()["retriable"] is True
    assert 1 <= int(answers[2].headers["retry-after"]) <= 10  # when a whole token is back
    assert elsewhere.status_code == 404
