"""Helpers for subscription tests: inbound messages stored as storage will, a receiver.

`store_inbound` writes an inbound message the way the inbound endpoint does:
sealed with the vault like `prepare_outbound`, direction `inbound`, status
`received`, no client, a source partner, `seq` from the audit collection
entry, and the subscriber deliveries `deliveries_for` returns, all in one
transaction.
"""

import asyncio
import contextlib
import socket
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from commcentre.audit.service import AuditAction, AuditRecord, append
from commcentre.delivery.repository import insert_deliveries
from commcentre.ids import new_id
from commcentre.messages import repository as messages_repository
from commcentre.messages.schemas import MessageIn
from commcentre.messages.service import ENVELOPE_CONTEXT, kind_bits
from commcentre.runtime import Runtime
from commcentre.subscriptions.fanout import deliveries_for
from tests.factories import message


@dataclass(frozen=True)
class StoredInbound:
    id: uuid.UUID
    deliveries: list[dict[str, Any]]


async def store_inbound(
    runtime: Runtime, *, source_partner_id: str, now: datetime | None = None, **overrides: Any
) -> StoredInbound:
    """Store one inbound message from `source_partner_id` and fan it out to subscribers."""
    now = now or runtime.clock()
    content = MessageIn.model_validate(message(**overrides))
    vault = runtime.vault
    message_id = new_id()
    canonical = content.model_dump_json(exclude_none=True).encode()
    sealed = vault.envelope.seal(canonical, record_id=message_id, context=ENVELOPE_CONTEXT)
    kinds = sorted({str(subject.kind) for subject in content.subjects})
    row: dict[str, Any] = {
        "id": message_id,
        "direction": "inbound",
        "type": content.type.value,
        "channel": content.channel.value if content.channel else None,
        "recipients": list(content.recipients),
        "priority": content.priority.value,
        "legal_basis": content.legal_basis,
        "handling_codes": [code.value for code in content.handling_codes],
        "subject_kinds": kind_bits(kinds),
        "status": "received",
        "in_reply_to": None,
        "case_digest": vault.case_ref_digest(content.case_ref) if content.case_ref else None,
        "source_partner_id": source_partner_id,
        "partner_ref": f"ref-{uuid.uuid4().hex[:12]}",
        "client_id": None,
        "created_at": now,
        "purge_after": now + vault.retention,
        "enc_format": sealed.format_version,
        "key_version": sealed.key_version,
        "wrapped_key": sealed.wrapped_key,
        "ciphertext": sealed.ciphertext,
    }
    collection = AuditRecord(
        action=AuditAction.COLLECTION,
        event="message.received",
        actor=f"partner:{source_partner_id}",
        subject_type="message",
        subject_id=str(message_id),
        details={"direction": "inbound", "type": content.type.value},
        occurred_at=now,
    )
    async with runtime.db.write_sessions() as session, session.begin():
        [seq] = await append(session, [collection], now=now)
        await messages_repository.insert_messages(session, [{**row, "seq": seq}])
        deliveries = await deliveries_for(session, row, now=now)
        await insert_deliveries(session, deliveries)
    if runtime.dispatcher is not None:
        runtime.dispatcher.wake()
    return StoredInbound(message_id, deliveries)


# -- a subscriber on 127.0.0.1 -------------------------------------------------------------------


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


Answer = Callable[[Request], Awaitable[int]]


def status(code: int) -> Answer:
    async def answer(request: Request) -> int:
        return code

    return answer


@dataclass
class Subscriber:
    """An HTTP/1.1 server that records requests and answers with `script`, then `otherwise`."""

    script: deque[Answer] = field(default_factory=deque)
    otherwise: Answer = field(default_factory=lambda: status(200))
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {}
            for line in filter(None, head[1:]):
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = Request(headers, body)
            self.requests.append(request)
            answer = self.script.popleft() if self.script else self.otherwise
            code = await answer(request)
            writer.write(
                f"HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def free_port() -> int:
    """A port nothing listens on (for a subscriber that is down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
