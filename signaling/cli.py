"""``p2p-signaling``: run the server, or mint a join token.

    p2p-signaling --host 0.0.0.0 --port 8000 [options]     # serve
    p2p-signaling mint-token --info-hash SWARM_ID --ttl-s 3600  # print a join token

Every serve option is also an environment variable: ``--rate-per-s`` is
``P2P_SIGNALING_RATE_PER_S``. Flags win over the environment, which wins over defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence

from p2p_cli.flags import ConfigFlags, Option
from p2p_cli.serving import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STATUS_HELP,
    EXIT_USAGE,
    error,
    listen_error,
    print_result,
    run_main,
)
from signaling.config import ENV_PREFIX, SignalingConfig, env_name
from signaling.errors import UsageError
from signaling.tokens import mint_token

PROG = "p2p-signaling"
FLAGS = ConfigFlags(
    SignalingConfig,
    env_prefix=ENV_PREFIX,
    options={"token_secret": Option(secret=True)},
    error=UsageError,
)


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2p-signaling",
        description="WebTorrent-tracker-compatible signaling server for p2p-hls "
        "(WebSocket at /announce; also /healthz, /metrics, /api/swarms). "
        "Subcommand: 'p2p-signaling mint-token --help'.",
        epilog=EXIT_STATUS_HELP,
    )
    FLAGS.add_to(parser, env)
    return parser


def config_from_args(argv: Sequence[str], env: Mapping[str, str]) -> SignalingConfig:
    args = build_parser(env).parse_args(list(argv))
    return SignalingConfig(**FLAGS.values(args))


def swarm_hex(text: str) -> str:
    """A swarm as a token lists it (hex of the info_hash's 20 bytes), from either the
    20-character swarm id that the page, ``p2p-agent`` and the tracker messages carry, or those
    40 hex characters (as ``/api/swarms`` shows them)."""
    if len(text) == 20:
        try:
            return text.encode("latin-1").hex()
        except UnicodeEncodeError:
            pass
    elif len(text) == 40 and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower()
    raise argparse.ArgumentTypeError(
        f"not a swarm id: {text!r} ({len(text)} characters): give the 20-character swarm id "
        "(as the demo page and p2p-agent show it) or the 40 hex characters of its bytes "
        "(as /api/swarms shows it)"
    )


def _ttl(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 10 * 365 * 86400:
        raise argparse.ArgumentTypeError(f"not a validity in seconds: {text!r}")
    return value


def _mint(argv: Sequence[str], env: Mapping[str, str]) -> int:
    parser = argparse.ArgumentParser(
        prog="p2p-signaling mint-token",
        description="Print an HMAC join token for the given swarms (see docs/signaling.md). "
        "A swarm's id is the 20-character info_hash its viewers announce: the demo page and "
        "p2p-agent show it (for p2p-hls clients it is the first 20 hex digits of "
        "SHA-1('p2p-hls/1 ' + master playlist URL), docs/protocol.md).",
        epilog=EXIT_STATUS_HELP,
    )
    parser.add_argument(
        "--info-hash",
        action="append",
        required=True,
        type=swarm_hex,
        metavar="SWARM_ID",
        help="the swarm: its 20-character id (as the page and p2p-agent show it) or the 40 hex "
        "characters of that id's bytes (as /api/swarms shows it); repeat for several swarms",
    )
    parser.add_argument(
        "--ttl-s", type=_ttl, default=3600.0, help="validity in seconds (default: 3600)"
    )
    parser.add_argument(
        "--secret",
        default=None,
        help="HMAC secret (default: env P2P_SIGNALING_TOKEN_SECRET; prefer the environment: "
        "a flag shows in the process list)",
    )
    args = parser.parse_args(list(argv))
    secret = args.secret or env.get(env_name("token_secret"))
    if not secret:
        parser.error("no secret: pass --secret or set P2P_SIGNALING_TOKEN_SECRET")
    token = mint_token(secret, args.info_hash, int(time.time() + args.ttl_s))
    print_result(token)
    return EXIT_OK


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    return run_main(_main, argv, env)


def _main(argv: Sequence[str] | None, env: Mapping[str, str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    try:
        if argv[:1] == ["mint-token"]:
            return _mint(argv[1:], env)
        config = config_from_args(argv, env)
    except UsageError as exc:
        error(PROG, str(exc))
        return EXIT_USAGE
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from signaling.server import bind, serve

    try:
        sock = bind(config)
    except OSError as exc:
        error(PROG, listen_error(config.host, config.port, exc))
        return EXIT_FAILED
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"{PROG} listening on http://{shown}:{port} (WebSocket ws://{shown}:{port}/announce)")
    sys.stdout.flush()
    serve(config, sock)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
