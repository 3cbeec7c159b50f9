"""What the inbound endpoint answers."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class InboundReceipt(BaseModel):
    """A pushed message is stored (202), or was already (200, `duplicate`)."""

    id: uuid.UUID = Field(description="Our id of the stored message.")
    status: Literal["received"] = "received"
    duplicate: bool = Field(
        description="True when this webhook-id was received from the partner before: "
        "nothing new was stored and `id` is the message stored the first time."
    )
    received_at: datetime = Field(description="When we first received this webhook-id.")
