"""``p2p-origin``: generate a test HLS stream with PyAV and serve it, with shaping and faults.

    p2p-origin --host 127.0.0.1 --port 8080 [options]     # serve (Ctrl-C stops gracefully)
    p2p-origin generate --out DIR [media options]         # write the VOD streams to DIR

Every option is also an environment variable: ``--error-rate`` is ``P2P_ORIGIN_ERROR_RATE``.
Flags win over the environment, which wins over the defaults (docs/origin.md).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from peer_agent.origin.config import (
    MediaConfig,
    OriginConfig,
    ShapingConfig,
    env_name,
    flat_fields,
    parse_renditions,
)
from peer_agent.origin.errors import ConfigError, OriginError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_MEDIA_GROUPS = (MediaConfig,)


def _convert(type_name: str, raw: str, name: str) -> Any:
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
        if type_name.startswith("tuple[Rendition"):
            return parse_renditions(raw)
        return raw
    except ValueError as exc:
        raise ConfigError(f"bad value for {name}: {raw!r} ({exc})") from exc


def _arg_type(type_name: str, name: str) -> Callable[[str], Any]:
    def convert(raw: str) -> Any:
        try:
            return _convert(type_name, raw, name)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return convert


def _default_text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(getattr(v, "spec", lambda v=v: str(v))() for v in value)
    return repr(value)


def _add_options(
    parser: argparse.ArgumentParser, env: Mapping[str, str], groups: tuple[type, ...]
) -> None:
    for cls, f in flat_fields():
        if cls not in groups:
            continue
        flag = "--" + f.name.replace("_", "-")
        var = env_name(f.name)
        type_name = str(f.type)
        default = f.default if f.default is not dataclasses.MISSING else None
        shown = _default_text(default)
        if var in env:
            default = _convert(type_name, env[var], var)
        help_text = f"{f.metadata.get('help', '')} [env {var}] (default: {shown})"
        if type_name == "bool":
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=help_text,
            )
        else:
            parser.add_argument(
                flag, dest=f.name, default=default, type=_arg_type(type_name, flag), help=help_text
            )


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2p-origin",
        description="Test HLS origin for p2p-hls: generates H.264/AAC streams with PyAV "
        "(VOD and live, MPEG-TS and fMP4, byte-range) and serves them with bandwidth caps, "
        "latency and faults. JSON at /streams, /stats (POST /stats/reset), /control. "
        "Subcommand: 'p2p-origin generate --help'.",
    )
    _add_options(parser, env, (OriginConfig, MediaConfig, ShapingConfig))
    return parser


def _group_values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    return {f.name: getattr(args, f.name) for c, f in flat_fields() if c is cls}


def config_from_args(argv: Sequence[str], env: Mapping[str, str]) -> OriginConfig:
    args = build_parser(env).parse_args(list(argv))
    return OriginConfig(
        **_group_values(args, OriginConfig),
        media=MediaConfig(**_group_values(args, MediaConfig)),
        shaping=ShapingConfig(**_group_values(args, ShapingConfig)),
    )


def _generate(argv: Sequence[str], env: Mapping[str, str]) -> int:
    parser = argparse.ArgumentParser(
        prog="p2p-origin generate",
        description="Generate the VOD streams (TS, fMP4, byte-range) with playlists and "
        "manifests into a directory, then exit.",
    )
    parser.add_argument("--out", required=True, help="output directory (replaced if it exists)")
    _add_options(parser, env, _MEDIA_GROUPS)
    args = parser.parse_args(list(argv))
    media_config = MediaConfig(**_group_values(args, MediaConfig))
    from peer_agent.origin.store import generate_stream

    started = time.perf_counter()
    media = generate_stream(media_config, args.out)
    print(
        f"wrote {media.segment_count} segments x {len(media.renditions)} renditions to "
        f"{args.out} in {time.perf_counter() - started:.1f} s"
    )
    return 0


class _Terminated(Exception):
    """SIGTERM, re-raised by uvicorn after its graceful shutdown."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated(signum)


def _serve(config: OriginConfig, media: Any, sock: Any) -> None:
    """Serve until SIGINT/SIGTERM. uvicorn shuts down gracefully, then re-raises the signal;
    both end here as a normal exit."""
    from peer_agent.origin.server import serve_forever

    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        asyncio.run(serve_forever(config, media, sock=sock))
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_streams(base_url: str, description: dict[str, Any]) -> None:
    print(f"p2p-origin listening on {base_url}", flush=True)
    print(f"  streams: {base_url}/streams   stats: {base_url}/stats", flush=True)
    for stream in description["streams"]:
        print(f"  {stream['name']:<14} {stream['master_url']}", flush=True)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
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
        print(
            f"p2p-origin: error: cannot listen on {config.host}:{config.port}: {exc}",
            file=sys.stderr,
        )
        return 1
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
