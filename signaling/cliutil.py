"""Flag and environment-variable values for our console scripts (``p2p-signaling``,
``p2p-hashsvc``): one conversion from text to a config field's type, by its type's name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from signaling.errors import UsageError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def convert(type_name: str, raw: str, name: str, error: type[Exception] = UsageError) -> Any:
    """``raw`` as a value of the field type named ``type_name``; a bad one raises ``error``
    naming ``name``."""
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        if type_name == "bool":
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(raw)
        if type_name.startswith("tuple[int"):
            return tuple(int(part) for part in raw.split(",") if part.strip())
        if type_name.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if type_name == "str | None":
            return raw or None
        return raw
    except ValueError as exc:
        raise error(f"bad value for {name}: {raw!r}") from exc


def arg_type(
    type_name: str, name: str, error: type[Exception] = UsageError
) -> Callable[[str], Any]:
    """An argparse ``type=`` converting with :func:`convert`."""

    def converter(raw: str) -> Any:
        return convert(type_name, raw, name, error)

    return converter
