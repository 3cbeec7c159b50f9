"""HTTP route of partner pushes: POST /v1/inbound/{partner_id} (Standard Webhooks)."""

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response

from commcentre.crypto.keyring import ExchangeKeyProvider
from commcentre.errors import (
    CommCentreError,
    Conflict,
    NotFound,
    PayloadTooLarge,
    UnprocessableContent,
    UnsupportedMediaType,
    problem_responses,
)
from commcentre.inbound import service
from commcentre.inbound.schemas import InboundReceipt
from commcentre.inbound.signature import read_headers
from commcentre.runtime import Runtime, RuntimeDep

# Labels of commcentre_inbound_refused, by the status of the refusal.
_REFUSAL_REASONS = {
    401: "signature",
    404: "partner",
    409: "partner",
    415: "payload",
    422: "payload",
}

router = APIRouter(tags=["inbound"])

DESCRIPTION = """\
A partner pushes a message to us. No API key: the request is authenticated by its
[Standard Webhooks](https://www.standardwebhooks.com/) signature, checked before the
body is read:

- `webhook-id`: the partner's unique id of this push (1..255 printable ASCII), the same
  on every retry of it;
- `webhook-timestamp`: integer seconds since the epoch, within
  `COMMCENTRE_INBOUND_TOLERANCE_SECONDS` (default 300) of our clock, either way;
- `webhook-signature`: space-separated `v1,<base64>` entries, each the HMAC-SHA256 of
  `{webhook-id}.{webhook-timestamp}.{raw body}` under one of the partner's **inbound**
  `whsec_` secrets (the key is the base64 after the prefix). One matching entry, under any
  of them, is enough: during a rotation the partner signs with both. The partner's
  outbound secrets (what our deliveries to it are signed with) are never accepted here.

The body is the partner's document in its adapter's format (docs/partners.md):
`application/json` as is, or `application/jose`: a compact JWE to one of our exchange keys
(`commcentre keys public` prints them; `alg` ECDH-ES+A256KW or ECDH-ES, `enc` A256GCM, no
`zip`). The signature covers the body as sent (the JWE string).

Answers: **202** stored (sealed, audited, fanned out to subscribers); **200** this
webhook-id was received from this partner before, nothing new stored, the same `id`;
**401** a header is missing or malformed, the timestamp is out of tolerance, or no
signature matches (problem type `replayed-delivery` when the push is one of our own
deliveries, captured and sent back); **404** no enabled partner with this id; **409**
the partner does not push messages (e.g. filedrop); **413** body too large; **415**
another content type;
**422** the JWE is refused or the document does not fit the format (`errors` name JSON
paths, never values), or (problem type `replayed-delivery`) the webhook-id is one of our
delivery ids or the document's message id one of our message ids: our own outbound
format is never taken back as a partner's message. Nothing is stored on any refusal.
"""

# A partner on the `webhook` adapter sends what our webhook adapter sends (docs/partners.md).
_WEBHOOK_EVENT_EXAMPLE = {
    "type": "message.outbound",
    "id": "msg_2Kx7Ykq5C1v0",
    "timestamp": "2026-11-28T14:00:00+00:00",
    "data": {
        "message_id": "0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b",
        "created_at": "2026-11-28T13:59:58+00:00",
        "type": "reply",
        "channel": "bilateral",
        "recipients": ["FI"],
        "priority": "high",
        "legal_basis": "DIR_2023_977",
        "handling_codes": ["H0"],
        "case_ref": "FI-NBI-2026-004411",
        "subjects": [
            {
                "kind": "vehicle",
                "vin": "WVWZZZ1KZAW000001",
                "registration_country": "FI",
                "status": "stolen",
            }
        ],
        "body": "Vehicle seen at Haparanda on 2026-11-28; driver not identified.",
    },
}

_HEADER_DOC = "Standard Webhooks header (see the description); a missing one answers 401."


@router.post(
    "/v1/inbound/{partner_id}",
    status_code=202,
    response_model=InboundReceipt,
    summary="Receive a message a partner pushes (Standard Webhooks)",
    description=DESCRIPTION,
    responses={
        200: {
            "model": InboundReceipt,
            "description": "A duplicate: this webhook-id was received before; nothing stored.",
        },
        **problem_responses(
            NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType, UnprocessableContent
        ),
    },
    openapi_extra={
        "security": [],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": "The partner's document in its adapter's format.",
                    },
                    "example": _WEBHOOK_EVENT_EXAMPLE,
                },
                "application/jose": {
                    "schema": {
                        "type": "string",
                        "description": "A compact JWE (ECDH-ES+A256KW, A256GCM) of that "
                        "document, to one of our exchange keys.",
                    },
                    "example": "eyJhbGciOiJFQ0RILUVTK0EyNTZLVyIsImVuYyI6IkEyNTZHQ00iLCJraWQiOiJ"
                    "...<encrypted key>.<iv>.<ciphertext>.<tag>",
                },
            },
        },
    },
)
async def receive_inbound(
    partner_id: Annotated[str, Path(description="The partner's id in our registry.")],
    request: Request,
    runtime: RuntimeDep,
    webhook_id: Annotated[str | None, Header(alias="webhook-id", description=_HEADER_DOC)] = None,
    webhook_timestamp: Annotated[
        str | None, Header(alias="webhook-timestamp", description=_HEADER_DOC)
    ] = None,
    webhook_signature: Annotated[
        str | None, Header(alias="webhook-signature", description=_HEADER_DOC)
    ] = None,
) -> Response:
    try:
        outcome = await _receive(
            partner_id, request, runtime, webhook_id, webhook_timestamp, webhook_signature
        )
    except service.REPLAY_REFUSALS:
        runtime.metrics.inbound_refused.labels("replay").inc()
        raise
    except CommCentreError as exc:
        runtime.metrics.inbound_refused.labels(_REFUSAL_REASONS.get(exc.status, "other")).inc()
        raise
    if outcome.subject_kinds:
        runtime.metrics.accepted("inbound", outcome.subject_kinds)
    if outcome.request_answered_after is not None:
        runtime.metrics.request_answer_seconds.observe(outcome.request_answered_after)
    return Response(
        outcome.receipt.model_dump_json(),
        status_code=outcome.status_code,
        media_type="application/json",
    )


async def _receive(
    partner_id: str,
    request: Request,
    runtime: Runtime,
    webhook_id: str | None,
    webhook_timestamp: str | None,
    webhook_signature: str | None,
) -> service.InboundOutcome:
    headers = read_headers(webhook_id, webhook_timestamp, webhook_signature)
    body = await request.body()
    dispatcher = runtime.dispatcher
    keys = runtime.keys
    services = service.InboundServices(
        db=runtime.db,
        vault=runtime.vault,
        adapters=runtime.adapters,
        exchange_keys=keys if isinstance(keys, ExchangeKeyProvider) else None,
        tolerance_seconds=runtime.settings.inbound_tolerance_seconds,
        on_committed=dispatcher.wake if dispatcher is not None else None,
    )
    push = service.InboundPush(
        partner_id=partner_id,
        headers=headers,
        content_type=request.headers.get("content-type", ""),
        body=body,
    )
    return await service.receive(services, push, now=runtime.clock())
