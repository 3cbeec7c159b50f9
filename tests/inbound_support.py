"""What a partner does to push a message to us, for the tests: an event, signed.

Signatures come from the `standardwebhooks` reference package, so what the
tests send is what any Standard Webhooks sender produces.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from standardwebhooks import Webhook

from commcentre.adapters.base import OutboundMessage
from commcentre.adapters.http import message_data
from commcentre.messages.schemas import MESSAGE_EXAMPLE, MessageIn


def event(content: dict[str, Any] | None = None, **data: Any) -> dict[str, Any]:
    """A webhook event as our webhook adapter sends it, with `data` fields overridden."""
    message = MessageIn.model_validate(content or MESSAGE_EXAMPLE)
    outbound = OutboundMessage(id=uuid.uuid4(), created_at=datetime.now(UTC), content=message)
    return {
        "type": "message.outbound",
        "id": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {**message_data(outbound), **data},
    }


def signed_headers(
    body: bytes,
    secret: str,
    *,
    webhook_id: str | None = None,
    at: datetime | None = None,
    content_type: str = "application/json",
) -> dict[str, str]:
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    return {
        "content-type": content_type,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, body.decode()),
    }


async def push(
    http: httpx.AsyncClient, partner_id: str, secret: str, content: dict[str, Any]
) -> httpx.Response:
    """The partner pushes `content` as a signed webhook event."""
    body = orjson.dumps(event(content))
    return await http.post(
        f"/v1/inbound/{partner_id}", content=body, headers=signed_headers(body, secret)
    )


async def receive(
    http: httpx.AsyncClient, partner_id: str, secret: str, content: dict[str, Any]
) -> str:
    """Push `content` and return the id it was stored under (202 expected)."""
    response = await push(http, partner_id, secret, content)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])
