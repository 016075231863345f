"""``p2p-hashsvc``: serve SHA-256 manifests for origins that publish none.

    p2p-hashsvc --host 0.0.0.0 --port 8090 --allow-prefix https://cdn.example.com/live/

Every option is also an environment variable: ``--max-playlists`` is
``P2P_HASHSVC_MAX_PLAYLISTS``; ``--allow-prefix`` (repeatable) is ``P2P_HASHSVC_ALLOW_PREFIXES``
(comma-separated). Flags win over the environment, which wins over defaults. Exit status: 0
after a graceful shutdown (SIGINT/SIGTERM), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from signaling.cliutil import arg_type, convert
from signaling.hashsvc.config import HashServiceConfig, config_fields, env_name
from signaling.hashsvc.errors import ConfigError


class UsageError(Exception):
    """Bad flags or environment values (not a ValueError: argparse must not swallow it)."""


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2p-hashsvc",
        description="Hash service for p2p-hls: fetches each segment of a media playlist once, "
        "serves {uri: sha256} at GET /manifest?playlist=URL (also /healthz, /stats).",
    )
    for f in config_fields():
        var = env_name(f.name)
        help_text = f"{f.metadata.get('help', '')} [env {var}]"
        if f.name == "allow_prefixes":
            parser.add_argument(
                "--allow-prefix",
                dest="allow_prefixes",
                action="append",
                default=None,
                metavar="URL",
                help=help_text + " (comma-separated in the environment)",
            )
            continue
        type_name = str(f.type)
        default = f.default
        if var in env:
            default = convert(type_name, env[var], var, UsageError)
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=default,
            type=arg_type(type_name, "--" + f.name.replace("_", "-"), UsageError),
            help=f"{help_text} (default: {f.default!r})",
        )
    return parser


def config_from_args(argv: Sequence[str], env: Mapping[str, str]) -> HashServiceConfig:
    args = build_parser(env).parse_args(list(argv))
    values = {f.name: getattr(args, f.name) for f in config_fields()}
    prefixes = args.allow_prefixes
    if prefixes is None:
        raw = env.get(env_name("allow_prefixes"), "")
        prefixes = [part.strip() for part in raw.split(",") if part.strip()]
    if not prefixes:
        raise UsageError("at least one --allow-prefix (or P2P_HASHSVC_ALLOW_PREFIXES) is required")
    values["allow_prefixes"] = tuple(prefixes)
    try:
        return HashServiceConfig(**values)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    try:
        config = config_from_args(argv, env)
    except UsageError as exc:
        print(f"p2p-hashsvc: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from signaling.hashsvc.server import serve_forever

    asyncio.run(serve_forever(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
