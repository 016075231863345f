"""A frozen config dataclass as command-line flags and environment variables.

Every field whose type is a scalar (``str``, ``int``, ``float``, ``bool``), an optional scalar
(``float | None``) or a tuple of scalars gets a flag and an environment variable, named after
the field::

    max_peers: int = 8          ->  --max-peers N      and  P2P_AGENT_MAX_PEERS=N
    leech_only: bool = False    ->  --leech-only / --no-leech-only,  P2P_AGENT_LEECH_ONLY=yes
    origins: tuple[str, ...]    ->  --origins a,b      and  P2P_SIGNALING_ORIGINS=a,b
    duration_s: float | None    ->  --duration-s S     (an empty value in the environment: None)

so a field added to a config dataclass is a flag and a variable with no other change. Fields of
other types (nested config groups, ``Any``) are left out unless an :class:`Option` gives them a
parser. The help text is the field's ``metadata["help"]``, else the ``#:`` comment above it, and
it names the variable and the default. An :class:`Option` renames a flag or a variable (old names
keep working), makes a tuple field a repeatable flag, a field positional, or a value secret (its
default and environment value are never shown).

Precedence: a flag wins over the environment, which wins over the dataclass default. With
``overrides_only=True`` (configs layered over a file, as in ``p2p-loadtest --scenario``) flags
and variables default to ``None`` and :meth:`ConfigFlags.values` returns only what was given.

A bad value raises the ``error`` class the caller passes (a bad flag value through argparse,
which prints ``argument --x: ...`` and exits 2 when ``error`` is a ``ValueError``); the message
names the flag or the variable and the value.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_SCALARS: tuple[type, ...] = (str, int, float, bool)
_FIELD_RE = re.compile(r"^\s+(\w+)\s*:")


@dataclass(frozen=True)
class Option:
    """How one field differs from the default flag/variable naming."""

    #: Flags of the field (default ``--field-name``). For a bool, the positive forms.
    flags: tuple[str, ...] = ()
    #: For a bool: the flags that set it false (default ``--no-X`` for each ``--X``).
    negative: tuple[str, ...] = ()
    #: The environment variable (default: prefix + FIELD_NAME); ``""``: none.
    env: str | None = None
    #: A tuple field given by repeating the flag (``--ice-server A --ice-server B``); the
    #: variable is comma-separated. Flags given replace the variable's list.
    repeat: bool = False
    #: A positional argument instead of a flag.
    positional: bool = False
    metavar: str | None = None
    #: Help text (default: the field's ``metadata["help"]`` or its ``#:`` comment).
    help: str | None = None
    #: Never show the default or the environment's value (tokens, secrets). A field declared
    #: with ``field(repr=False)`` is secret without saying so here.
    secret: bool = False
    #: Text -> value for a field of a type this module does not know (e.g. renditions).
    parse: Callable[[str], Any] | None = None
    #: The default as shown in ``--help`` (default: computed from the value).
    default_text: str | None = None
    #: Leave the field out (no flag, no variable).
    skip: bool = False


def _is_optional(tp: Any) -> tuple[bool, Any]:
    """``(True, X)`` for ``X | None``; ``(False, tp)`` otherwise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _tuple_item(tp: Any) -> Any | None:
    """``X`` for ``tuple[X, ...]``, else ``None``."""
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
    return None


def _scalar(tp: Any, raw: str) -> Any:
    if tp is bool:
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"expected one of {sorted(_TRUE | _FALSE - {''})}")
    if tp is int:
        return int(raw)
    if tp is float:
        return float(raw)
    return raw


def convertible(tp: Any) -> bool:
    """True when :func:`convert` can read a value of type ``tp`` from text."""
    _, inner = _is_optional(tp)
    item = _tuple_item(inner)
    return inner in _SCALARS or (item is not None and item in _SCALARS)


def convert(tp: Any, raw: str) -> Any:
    """``raw`` as a value of type ``tp`` (see the module docstring); ``ValueError`` if bad."""
    optional, inner = _is_optional(tp)
    if optional and raw.strip() == "":
        return None
    item = _tuple_item(inner)
    if item is not None:
        return tuple(_scalar(item, part.strip()) for part in raw.split(",") if part.strip())
    return _scalar(inner, raw)


def doc_comments(cls: type) -> dict[str, str]:
    """The ``#:`` comments written above each field of a dataclass, by field name."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    pending: list[str] = []
    for line in lines[1:]:
        text = line.strip()
        if text.startswith("#:"):
            pending.append(text[2:].strip())
            continue
        match = _FIELD_RE.match(line)
        if match and pending:
            out.setdefault(match.group(1), " ".join(pending).replace("``", ""))
        if text and not text.startswith("#"):
            pending = []
    return out


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(getattr(v, "spec", lambda v=v: v)()) for v in value) or "none"
    return repr(value)


@dataclass(frozen=True)
class _Field:
    name: str
    tp: Any
    default: Any
    required: bool
    option: Option
    help: str


class ConfigFlags:
    """The flags and variables of one config dataclass (see the module docstring)."""

    def __init__(
        self,
        cls: type,
        *,
        env_prefix: str | None,
        options: Mapping[str, Option] | None = None,
        error: type[Exception] = ValueError,
        overrides_only: bool = False,
    ) -> None:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls!r} is not a dataclass")
        self.cls = cls
        self.env_prefix = env_prefix
        self.options = dict(options or {})
        self.error = error
        self.overrides_only = overrides_only
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(self.options) - names)
        if unknown:
            raise TypeError(f"options for unknown fields of {cls.__name__}: {unknown}")
        hints = typing.get_type_hints(cls)
        comments = doc_comments(cls)
        self.fields: list[_Field] = []
        for f in dataclasses.fields(cls):
            option = self.options.get(f.name, Option())
            tp = hints.get(f.name, Any)
            if option.skip or not f.init or (option.parse is None and not convertible(tp)):
                continue
            if f.default is not dataclasses.MISSING:
                default, required = f.default, False
            elif f.default_factory is not dataclasses.MISSING:
                default, required = f.default_factory(), False
            else:
                default, required = None, True
            if not f.repr and not option.secret:
                option = dataclasses.replace(option, secret=True)
            text = option.help or f.metadata.get("help") or comments.get(f.name, "")
            self.fields.append(_Field(f.name, tp, default, required, option, text))

    # -- names ---------------------------------------------------------------------------

    def env_name(self, name: str) -> str | None:
        option = self.options.get(name, Option())
        if option.env is not None:
            return option.env or None
        return None if self.env_prefix is None else self.env_prefix + name.upper()

    def flags_of(self, name: str) -> tuple[str, ...]:
        option = self.options.get(name, Option())
        return option.flags or ("--" + name.replace("_", "-"),)

    def shown_name(self, name: str) -> str:
        """How the user gives field ``name``: its first flag, or its positional name."""
        option = self.options.get(name, Option())
        if option.positional:
            return option.metavar or name.upper()
        return self.flags_of(name)[0]

    def explain(self, exc: BaseException) -> str:
        """A config's validation message, prefixed with the flag of the field it names first
        (``duration_s must be...`` -> ``--duration-s: duration_s must be...``)."""
        message = str(exc)
        first = message.split(" ", 1)[0].rstrip(":,")
        if any(item.name == first for item in self.fields):
            return f"{self.shown_name(first)}: {message}"
        return message

    # -- parsing -------------------------------------------------------------------------

    def _parse(self, item: _Field, raw: str, source: str) -> Any:
        try:
            if item.option.parse is not None:
                return item.option.parse(raw)
            if item.option.repeat:
                return raw
            return convert(item.tp, raw)
        except ValueError as exc:
            shown = "(hidden)" if item.option.secret else repr(raw)
            detail = f" ({exc})" if str(exc) and item.option.parse is not None else ""
            raise self.error(f"bad value for {source}: {shown}{detail}") from exc

    def _from_env(self, item: _Field, env: Mapping[str, str]) -> tuple[bool, Any]:
        var = self.env_name(item.name)
        if var is None or var not in env:
            return False, None
        raw = env[var]
        if item.option.repeat:
            return True, tuple(p.strip() for p in raw.split(",") if p.strip())
        return True, self._parse(item, raw, var)

    def _arg_type(self, item: _Field, flag: str) -> Callable[[str], Any]:
        def parse(raw: str) -> Any:
            try:
                return self._parse(item, raw, flag)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from exc

        parse.__name__ = item.name
        return parse

    def add_to(self, parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
        """Add every field's flag to ``parser``, its default taken from ``env`` when set."""
        for item in self.fields:
            self._add(parser, item, env)

    def _help(self, item: _Field) -> str:
        parts = [item.help] if item.help else []
        var = self.env_name(item.name)
        if var is not None:
            parts.append(f"[env {var}{', comma-separated' if item.option.repeat else ''}]")
        if not item.option.secret and not item.required:
            shown = item.option.default_text or _show(item.default)
            parts.append(f"(default: {shown})")
        return " ".join(parts).replace("%", "%%")

    def _add(self, parser: argparse.ArgumentParser, item: _Field, env: Mapping[str, str]) -> None:
        found, value = self._from_env(item, env)
        if found:
            default = value
        elif self.overrides_only or item.required:
            default = None
        else:
            default = item.default
        help_text = self._help(item)
        option = item.option
        if option.positional:
            parser.add_argument(
                item.name,
                metavar=option.metavar or item.name.upper(),
                type=self._arg_type(item, item.name.upper()),
                help=help_text,
                **({"nargs": "?", "default": default} if found else {}),
            )
            return
        flags = self.flags_of(item.name)
        _, inner = _is_optional(item.tp)
        if inner is bool and option.parse is None:
            group = parser.add_mutually_exclusive_group()
            negative = option.negative or tuple("--no-" + f[2:] for f in flags)
            group.add_argument(
                *flags, dest=item.name, action="store_const", const=True, help=help_text
            )
            group.add_argument(
                *negative,
                dest=item.name,
                action="store_const",
                const=False,
                help=f"sets {item.name} to false",
            )
            parser.set_defaults(**{item.name: default})
            return
        if option.repeat:
            parser.add_argument(
                *flags,
                dest=item.name,
                action="append",
                default=None,
                metavar=option.metavar,
                help=help_text + " (repeatable)",
            )
            if found or (not self.overrides_only and not item.required):
                parser.set_defaults(**{f"_env_{item.name}": default})
            return
        parser.add_argument(
            *flags,
            dest=item.name,
            default=default,
            metavar=option.metavar,
            type=self._arg_type(item, flags[0]),
            help=help_text,
        )

    def values(self, args: argparse.Namespace) -> dict[str, Any]:
        """The fields' values from parsed ``args`` (with ``overrides_only``: only those given).
        A required field with no value raises ``error`` naming its flag and variable."""
        out: dict[str, Any] = {}
        for item in self.fields:
            value = getattr(args, item.name, None)
            if item.option.repeat:
                if value is not None:
                    value = tuple(value)
                else:
                    value = getattr(args, f"_env_{item.name}", None)
            if value is None and item.required and not self.overrides_only:
                var = self.env_name(item.name)
                where = f" (or {var})" if var else ""
                raise self.error(f"{self.flags_of(item.name)[0]}{where} is required")
            if value is None and (self.overrides_only or item.option.repeat):
                continue
            out[item.name] = value
        return out


def add_all(
    parser: argparse.ArgumentParser, env: Mapping[str, str], flag_sets: Iterable[ConfigFlags]
) -> None:
    """Add several dataclasses' flags to one parser; two fields with one name is a bug."""
    seen: dict[str, str] = {}
    for flag_set in flag_sets:
        for item in flag_set.fields:
            if item.name in seen:
                raise TypeError(
                    f"field {item.name!r} of {flag_set.cls.__name__} clashes with "
                    f"{seen[item.name]}: skip or rename one"
                )
            seen[item.name] = flag_set.cls.__name__
        flag_set.add_to(parser, env)
