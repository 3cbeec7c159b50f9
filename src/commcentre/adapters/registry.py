"""Adapter discovery through the `commcentre.adapters` entry-point group.

`load_adapters` builds each adapter once with the shared `AdapterContext`.
A broken plugin (it fails to import, to build, or does not look like an
adapter) is logged and skipped, and listed by `AdapterRegistry.failed()`:
an outside package must never stop the gateway from starting. Partners using
a failed adapter then fail their config lookups with "unknown adapter".
"""

import inspect
from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError

from commcentre.adapters.base import ENTRY_POINT_GROUP, Adapter, AdapterConfigError, AdapterContext

log = structlog.get_logger(__name__)


def _shape_problem(name: str, adapter: Any) -> str | None:
    """Why `adapter` cannot serve as adapter `name`, or None."""
    if getattr(adapter, "name", None) != name:
        return "its `name` does not match the entry point name"
    model = getattr(adapter, "config_model", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return "its `config_model` is not a pydantic model"
    if not inspect.iscoroutinefunction(getattr(adapter, "deliver", None)):
        return "it has no async `deliver`"
    return None


def _safe_message(error: Mapping[str, Any]) -> str:
    # Pydantic's own messages name constraints, not input; a plugin validator might not,
    # so a message that quotes the (string) input falls back to the bare error type.
    message = str(error.get("msg", ""))
    value = error.get("input")
    if isinstance(value, str) and len(value) >= 3 and value in message:
        return str(error.get("type", "invalid"))
    return message


class AdapterRegistry:
    """The adapters of this process, by name (immutable once built)."""

    def __init__(self, adapters: Mapping[str, Adapter], failed: Mapping[str, str] | None = None):
        self._adapters = MappingProxyType(dict(adapters))
        self._failed = MappingProxyType(dict(failed or {}))

    @classmethod
    def from_adapters(cls, adapters: Iterable[Adapter]) -> "AdapterRegistry":
        """A registry of ready-made adapters (tests, embedding)."""
        by_name: dict[str, Adapter] = {}
        for adapter in adapters:
            if adapter.name in by_name:
                raise ValueError(f"two adapters are named {adapter.name!r}")
            by_name[adapter.name] = adapter
        return cls(by_name)

    def get(self, name: str) -> Adapter:
        """The adapter called `name`; AdapterConfigError when there is none."""
        try:
            return self._adapters[name]
        except KeyError:
            raise AdapterConfigError(f"unknown adapter: {name!r}") from None

    def names(self) -> list[str]:
        """Names of the usable adapters, sorted."""
        return sorted(self._adapters)

    def failed(self) -> dict[str, str]:
        """Entry points that could not be loaded: name -> short reason."""
        return dict(self._failed)

    def validate_config(self, name: str, raw: Mapping[str, Any]) -> BaseModel:
        """Validate a partner's raw adapter config; errors name field paths, never values."""
        model = self.get(name).config_model
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or '(config)'}: "
                f"{_safe_message(error)}"
                for error in exc.errors(include_url=False, include_context=False)
            )
            raise AdapterConfigError(f"invalid {name} config: {problems}") from None


def load_adapters(
    context: AdapterContext, *, discovered: Iterable[EntryPoint] | None = None
) -> AdapterRegistry:
    """Build every adapter of the entry-point group once; broken ones are logged and skipped."""
    points = entry_points(group=ENTRY_POINT_GROUP) if discovered is None else discovered
    adapters: dict[str, Adapter] = {}
    failed: dict[str, str] = {}
    for point in points:
        if point.name in adapters or point.name in failed:
            log.warning("adapter_duplicate_ignored", adapter=point.name, entry_point=point.value)
            continue
        try:
            adapter = point.load()(context)
        # Deliberately broad and only here: importing or building outside code can raise
        # anything, and one broken plugin must not keep the gateway from starting.
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc)[:200]}"
        else:
            reason = _shape_problem(point.name, adapter) or ""
            if not reason:
                adapters[point.name] = adapter
                continue
        failed[point.name] = reason
        log.error("adapter_load_failed", adapter=point.name, entry_point=point.value, reason=reason)
    return AdapterRegistry(adapters, failed)
