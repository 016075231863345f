"""``p2p-signaling``: run the server, or mint a join token.

    p2p-signaling --host 0.0.0.0 --port 8000 [options]     # serve
    p2p-signaling mint-token --info-hash HEX --ttl-s 3600  # print a join token

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
from signaling.config import ENV_PREFIX, SignalingConfig, env_name
from signaling.errors import UsageError
from signaling.tokens import mint_token

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
    )
    FLAGS.add_to(parser, env)
    return parser


def config_from_args(argv: Sequence[str], env: Mapping[str, str]) -> SignalingConfig:
    args = build_parser(env).parse_args(list(argv))
    return SignalingConfig(**FLAGS.values(args))


def _mint(argv: Sequence[str], env: Mapping[str, str]) -> int:
    parser = argparse.ArgumentParser(
        prog="p2p-signaling mint-token",
        description="Print an HMAC join token for the given swarms (see docs/signaling.md).",
    )
    parser.add_argument(
        "--info-hash",
        action="append",
        required=True,
        help="swarm as 40 hex characters (repeat for several)",
    )
    parser.add_argument("--ttl-s", type=float, default=3600.0, help="validity (default 3600)")
    parser.add_argument(
        "--secret",
        default=None,
        help="HMAC secret (default: env P2P_SIGNALING_TOKEN_SECRET; prefer the environment)",
    )
    args = parser.parse_args(list(argv))
    secret = args.secret or env.get(env_name("token_secret"))
    if not secret:
        parser.error("no secret: pass --secret or set P2P_SIGNALING_TOKEN_SECRET")
    token = mint_token(secret, args.info_hash, int(time.time() + args.ttl_s))
    print(token)
    return 0


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    try:
        if argv[:1] == ["mint-token"]:
            return _mint(argv[1:], env)
        config = config_from_args(argv, env)
    except UsageError as exc:
        print(f"p2p-signaling: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from signaling.server import serve

    serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
