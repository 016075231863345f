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

from p2p_cli.flags import ConfigFlags, Option
from p2p_cli.serving import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STATUS_HELP,
    EXIT_USAGE,
    error,
    listen_error,
    run_main,
)
from signaling.hashsvc.config import ENV_PREFIX, HashServiceConfig
from signaling.hashsvc.errors import ConfigError


class UsageError(Exception):
    """Bad flags or environment values (not a ValueError: argparse must not swallow it)."""


PROG = "p2p-hashsvc"
FLAGS = ConfigFlags(
    HashServiceConfig,
    env_prefix=ENV_PREFIX,
    options={
        "allow_prefixes": Option(flags=("--allow-prefix",), repeat=True, metavar="URL"),
    },
    error=UsageError,
)


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2p-hashsvc",
        description="Hash service for p2p-hls: fetches each segment of a media playlist once, "
        "serves {uri: sha256} at GET /manifest?playlist=URL (also /healthz, /stats).",
        epilog=EXIT_STATUS_HELP,
    )
    FLAGS.add_to(parser, env)
    return parser


def config_from_args(argv: Sequence[str], env: Mapping[str, str]) -> HashServiceConfig:
    args = build_parser(env).parse_args(list(argv))
    values = FLAGS.values(args)
    if not values["allow_prefixes"]:
        raise UsageError("at least one --allow-prefix (or P2P_HASHSVC_ALLOW_PREFIXES) is required")
    try:
        return HashServiceConfig(**values)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    return run_main(_main, argv, env)


def _main(argv: Sequence[str] | None, env: Mapping[str, str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    try:
        config = config_from_args(argv, env)
    except UsageError as exc:
        error(PROG, str(exc))
        return EXIT_USAGE
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from signaling.hashsvc.server import bind_socket, serve_forever

    try:
        sock = bind_socket(config.host, config.port)
    except OSError as exc:
        error(PROG, listen_error(config.host, config.port, exc))
        return EXIT_FAILED
    asyncio.run(serve_forever(config, sock))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
