"""Partner adapter config: checked by the adapter's own model, found through the registry.

Errors name the adapter and the config fields at fault, never the rejected
values (a config holds secrets).
"""

from collections.abc import Iterable
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from commcentre.adapters.base import Adapter, AdapterConfigError
from commcentre.errors import FieldError, UnprocessableContent


class AdapterCatalog(Protocol):
    """What partner rules need of the adapter registry."""

    def names(self) -> Iterable[str]: ...

    def get(self, name: str) -> Adapter: ...

    def validate_config(self, name: str, raw: dict[str, Any]) -> BaseModel: ...


def adapter_config(registry: AdapterCatalog, adapter: str, raw: dict[str, Any]) -> BaseModel:
    if adapter not in set(registry.names()):
        raise AdapterConfigError(f"adapter {adapter!r} is not installed")
    return registry.validate_config(adapter, raw)


def checked_config(registry: AdapterCatalog, adapter: str, raw: dict[str, Any]) -> BaseModel:
    """The adapter's own model of `raw`; 422 naming the adapter or the config field at fault."""
    known = sorted(registry.names())
    if adapter not in known:
        message = f"unknown adapter; known adapters: {', '.join(known) or 'none'}"
        raise UnprocessableContent(
            f"invalid input at body.adapter: {message}",
            errors=[FieldError(loc=["body", "adapter"], msg=message, type="adapter")],
        )
    try:
        return registry.validate_config(adapter, raw)
    except AdapterConfigError as exc:
        errors = _config_errors(registry, adapter, raw) or [
            FieldError(loc=["body", "config"], msg=str(exc), type="adapter_config")
        ]
        raise UnprocessableContent(str(exc), errors=errors) from None


def _config_errors(registry: AdapterCatalog, adapter: str, raw: dict[str, Any]) -> list[FieldError]:
    """One error per rejected config field, located under body.config (never the input)."""
    try:
        registry.get(adapter).config_model.model_validate(raw)
    except ValidationError as exc:
        return [
            FieldError(
                loc=["body", "config", *(p for p in err["loc"] if isinstance(p, str | int))],
                msg=_without_input(err),
                type=err["type"],
            )
            for err in exc.errors(include_url=False, include_context=False)
        ]
    except AdapterConfigError:
        pass
    return []


def _without_input(error: Any) -> str:
    # A plugin's own validator may quote the value it rejects: it may be a secret.
    message, value = str(error.get("msg", "")), error.get("input")
    if isinstance(value, str) and len(value) >= 3 and value in message:
        return str(error.get("type", "invalid"))
    return message
