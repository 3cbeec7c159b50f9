"""Routing rule request and response bodies."""

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from commcentre.messages.schemas import ShortText
from commcentre.partners.schemas import PartnerId
from commcentre.routing.rules import RuleMatch

RuleName = Annotated[ShortText, StringConstraints(max_length=100)]


def _distinct(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise PydanticCustomError("unique_items", "names a partner more than once")
    return values


class RoutingRuleIn(BaseModel):
    """Body of POST /v1/routing-rules and PUT /v1/routing-rules/{id}."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "example": {
                "name": "urgent europol traffic",
                "position": 10,
                "match": {"channels": ["europol"], "priorities": ["urgent", "high"]},
                "partners": ["europol-siena"],
                "final": False,
            }
        },
    )

    name: RuleName
    position: int = Field(ge=0, le=1_000_000, description="Evaluation order, lowest first.")
    enabled: bool = True
    match: RuleMatch = Field(description="Conditions; `{}` matches every message.")
    partners: Annotated[list[PartnerId], AfterValidator(_distinct)] = Field(
        min_length=1, max_length=50, description="Partners that receive a matching message."
    )
    final: bool = Field(False, description="A matching final rule stops the evaluation.")


class RoutingRuleOut(BaseModel):
    id: uuid.UUID
    name: str
    position: int
    enabled: bool
    match: RuleMatch
    partners: list[str]
    final: bool
    created_at: datetime
    updated_at: datetime
