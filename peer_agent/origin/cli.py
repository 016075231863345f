"""``p2p-origin``: generate a test HLS stream with PyAV and serve it, with shaping and faults.

    p2p-origin --host 127.0.0.1 --port 8080 [options]     # serve (Ctrl-C stops gracefully)
    p2p-origin generate --out DIR [media options]         # write the VOD streams to DIR

Every option is also an environment variable: ``--error-rate`` is ``P2P_ORIGIN_ERROR_RATE``.
Flags win over the environment, which wins over the defaults (docs/origin.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from p2p_cli.flags import ConfigFlags, Option, add_all
from p2p_cli.serving import (
    EXIT_FAILED,
    EXIT_STATUS_HELP,
    error,
    listen_error,
    run_main,
)
from peer_agent.origin.config import (
    ENV_PREFIX,
    MediaConfig,
    OriginConfig,
    ShapingConfig,
    parse_renditions,
)
from peer_agent.origin.errors import ConfigError, OriginError

PROG = "p2p-origin"


def _flags(cls: type, options: dict[str, Option] | None = None) -> ConfigFlags:
    return ConfigFlags(cls, env_prefix=ENV_PREFIX, options=options, error=ConfigError)


SERVER_FLAGS = _flags(OriginConfig)
MEDIA_FLAGS = _flags(MediaConfig, {"renditions": Option(parse=parse_renditions)})
SHAPING_FLAGS = _flags(ShapingConfig)


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2p-origin",
        description="Test HLS origin for p2p-hls: generates H.264/AAC streams with PyAV "
        "(VOD and live, MPEG-TS and fMP4, byte-range) and serves them with bandwidth caps, "
        "latency and faults. JSON at /streams, /stats (POST /stats/reset), /control. "
        "Subcommand: 'p2p-origin generate --help'.",
        epilog=EXIT_STATUS_HELP,
    )
    add_all(parser, env, (SERVER_FLAGS, MEDIA_FLAGS, SHAPING_FLAGS))
    return parser


def config_from_args(argv: Sequence[str], env: Mapping[str, str]) -> OriginConfig:
    args = build_parser(env).parse_args(list(argv))
    return OriginConfig(
        **SERVER_FLAGS.values(args),
        media=MediaConfig(**MEDIA_FLAGS.values(args)),
        shaping=ShapingConfig(**SHAPING_FLAGS.values(args)),
    )


def _generate(argv: Sequence[str], env: Mapping[str, str]) -> int:
    parser = argparse.ArgumentParser(
        prog="p2p-origin generate",
        description="Generate the VOD streams (TS, fMP4, byte-range) with playlists and "
        "manifests into a directory, then exit.",
    )
    parser.add_argument("--out", required=True, help="output directory (replaced if it exists)")
    MEDIA_FLAGS.add_to(parser, env)
    args = parser.parse_args(list(argv))
    media_config = MediaConfig(**MEDIA_FLAGS.values(args))
    from peer_agent.origin.store import generate_stream

    started = time.perf_counter()
    media = generate_stream(media_config, args.out)
    print(
        f"wrote {media.segment_count} segments x {len(media.renditions)} renditions to "
        f"{args.out} in {time.perf_counter() - started:.1f} s"
    )
    return 0


def _serve(config: OriginConfig, media: Any, sock: Any) -> None:
    """Serve until SIGINT/SIGTERM, then shut down gracefully and return."""
    from peer_agent.origin.server import serve_forever

    asyncio.run(serve_forever(config, media, sock=sock))


def _print_streams(base_url: str, description: dict[str, Any]) -> None:
    print(f"p2p-origin listening on {base_url}", flush=True)
    print(f"  streams: {base_url}/streams   stats: {base_url}/stats", flush=True)
    for stream in description["streams"]:
        print(f"  {stream['name']:<14} {stream['master_url']}", flush=True)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    return run_main(_main, argv, env)


def _main(argv: Sequence[str] | None, env: Mapping[str, str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    try:
        if argv[:1] == ["generate"]:
            logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
            return _generate(argv[1:], env)
        config = config_from_args(argv, env)
    except ConfigError as exc:
        print(f"p2p-origin: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from peer_agent.origin.server import base_url_of, bind_socket, build_app
    from peer_agent.origin.store import load_or_generate

    try:
        sock = bind_socket(config.host, config.port)
    except OSError as exc:
        error(PROG, listen_error(config.host, config.port, exc))
        return EXIT_FAILED
    try:
        started = time.perf_counter()
        media = load_or_generate(config)
        logging.getLogger(__name__).info(
            "media ready in %.1f s (%d segments x %d renditions)",
            time.perf_counter() - started,
            media.segment_count,
            len(media.renditions),
        )
        base_url = base_url_of(sock)
        _print_streams(base_url, build_app(config, media).catalog.describe(base_url))
        _serve(config, media, sock)
    except OriginError as exc:
        print(f"p2p-origin: error: {exc}", file=sys.stderr)
        return 1
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
