"""The objects a running process shares, built once in the lifespan and passed in."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from commcentre.adapters.registry import AdapterRegistry
from commcentre.auth.deps import Authenticator
from commcentre.clock import Clock
from commcentre.config import Settings
from commcentre.crypto import KeyProvider
from commcentre.db import Database
from commcentre.delivery.dispatcher import Dispatcher
from commcentre.destinations import DestinationRules
from commcentre.housekeeping import Housekeeper
from commcentre.idempotency.service import IdempotentRunner
from commcentre.messages.ingest import IngestWriter
from commcentre.messages.service import MessageVault
from commcentre.metrics import Metrics
from commcentre.routing.directory import RoutingDirectory


@dataclass(slots=True)
class Runtime:
    settings: Settings
    db: Database
    keys: KeyProvider
    vault: MessageVault
    ingest: IngestWriter
    authenticator: Authenticator
    idempotent: IdempotentRunner
    adapters: AdapterRegistry
    routing: RoutingDirectory
    dispatcher: Dispatcher | None
    clock: Clock
    metrics: Metrics
    housekeeper: Housekeeper | None
    # What partner URLs and subscription callbacks may point at (checked at registration).
    destinations: DestinationRules


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
