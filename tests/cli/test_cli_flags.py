"""p2p_cli.flags: one config dataclass as flags and environment variables (pure unit tests)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from p2p_cli.flags import ConfigFlags, Option, add_all, convert, doc_comments


@dataclass(frozen=True)
class Sample:
    #: Where to go.
    url: str
    #: Neighbours at most.
    max_peers: int = 8
    rate_per_s: float = 2.5
    leech_only: bool = False
    duration_s: float | None = None
    origins: tuple[str, ...] = ()
    ports: tuple[int, ...] = (1, 2)
    token: str | None = field(default=None, repr=False)
    nested: object = None
    helped: int = field(default=3, metadata={"help": "from metadata"})


def parse(flags: ConfigFlags, argv: list[str], env: dict[str, str]) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="t")
    flags.add_to(parser, env)
    return flags.values(parser.parse_args(argv))


def test_every_scalar_field_is_a_flag_and_a_variable_and_flags_win() -> None:
    flags = ConfigFlags(Sample, env_prefix="T_", options={"url": Option(positional=True)})
    env = {"T_MAX_PEERS": "3", "T_RATE_PER_S": "1", "T_ORIGINS": "a, b", "T_LEECH_ONLY": "yes"}
    values = parse(flags, ["u", "--max-peers", "5", "--ports", "7,8"], env)
    assert values["max_peers"] == 5  # the flag wins over the environment
    assert values["rate_per_s"] == 1.0 and values["origins"] == ("a", "b")
    assert values["ports"] == (7, 8) and values["leech_only"] is True
    assert "nested" not in values  # a type with no text form gets no flag
    config = Sample(**values)  # type: ignore[arg-type]
    assert config.url == "u" and config.duration_s is None and config.helped == 3
    assert parse(flags, ["u", "--no-leech-only"], env)["leech_only"] is False


def test_optional_values_and_empty_environment() -> None:
    flags = ConfigFlags(Sample, env_prefix="T_", options={"url": Option(positional=True)})
    assert parse(flags, ["u", "--duration-s", "4"], {})["duration_s"] == 4.0
    assert parse(flags, ["u"], {"T_DURATION_S": ""})["duration_s"] is None
    assert parse(flags, ["u"], {"T_TOKEN": ""})["token"] is None


def test_renamed_repeatable_and_secret_options() -> None:
    flags = ConfigFlags(
        Sample,
        env_prefix="T_",
        options={
            "url": Option(flags=("--url", "--address")),
            "origins": Option(flags=("--origin",), repeat=True),
            "token": Option(flags=("--token",), env="MY_TOKEN", secret=True),
        },
    )
    values = parse(flags, ["--address", "x", "--origin", "a", "--origin", "b"], {})
    assert values["url"] == "x" and values["origins"] == ("a", "b")
    assert parse(flags, ["--url", "x"], {"T_ORIGINS": "c,d"})["origins"] == ("c", "d")
    assert parse(flags, ["--url", "x"], {})["origins"] == ()
    assert parse(flags, ["--url", "x"], {"MY_TOKEN": "s3cret"})["token"] == "s3cret"
    parser = argparse.ArgumentParser(prog="t")
    flags.add_to(parser, {"MY_TOKEN": "s3cret"})
    assert "s3cret" not in parser.format_help() and "MY_TOKEN" in parser.format_help()


def test_a_field_hidden_from_repr_is_secret_in_help_and_errors() -> None:
    flags = ConfigFlags(Sample, env_prefix="T_", options={"url": Option(positional=True)})
    parser = argparse.ArgumentParser(prog="t")
    flags.add_to(parser, {"T_TOKEN": "s3cret"})
    text = " ".join(parser.format_help().split())
    assert "s3cret" not in text and "[env T_TOKEN]" in text
    assert "[env T_TOKEN] (default" not in text  # no default shown for a secret


def test_required_field_missing_names_the_flag_and_the_variable() -> None:
    flags = ConfigFlags(Sample, env_prefix="T_")
    with pytest.raises(ValueError, match=r"--url \(or T_URL\) is required"):
        parse(flags, [], {})
    assert parse(flags, [], {"T_URL": "from-env"})["url"] == "from-env"


def test_bad_values_name_the_source() -> None:
    flags = ConfigFlags(Sample, env_prefix="T_", options={"url": Option(positional=True)})
    with pytest.raises(ValueError, match=r"bad value for T_MAX_PEERS: 'many'"):
        parse(flags, ["u"], {"T_MAX_PEERS": "many"})
    with pytest.raises(ValueError, match="bad value for T_LEECH_ONLY"):
        parse(flags, ["u"], {"T_LEECH_ONLY": "perhaps"})
    with pytest.raises(SystemExit) as exc:
        parse(flags, ["u", "--rate-per-s", "fast"], {})
    assert exc.value.code == 2


def test_overrides_only_returns_only_what_was_given() -> None:
    flags = ConfigFlags(Sample, env_prefix="T_", overrides_only=True)
    assert parse(flags, ["--max-peers", "2"], {"T_LEECH_ONLY": "1"}) == {
        "max_peers": 2,
        "leech_only": True,
    }


def test_help_comes_from_metadata_or_doc_comments_and_shows_defaults() -> None:
    assert doc_comments(Sample)["max_peers"] == "Neighbours at most."
    flags = ConfigFlags(Sample, env_prefix="T_")
    parser = argparse.ArgumentParser(prog="t")
    flags.add_to(parser, {})
    text = " ".join(parser.format_help().split())
    assert "Neighbours at most. [env T_MAX_PEERS] (default: 8)" in text
    assert "from metadata [env T_HELPED] (default: 3)" in text


def test_clashing_field_names_across_dataclasses_are_refused() -> None:
    @dataclass(frozen=True)
    class Other:
        max_peers: int = 1

    parser = argparse.ArgumentParser(prog="t")
    with pytest.raises(TypeError, match="max_peers"):
        add_all(
            parser, {}, (ConfigFlags(Sample, env_prefix="T_"), ConfigFlags(Other, env_prefix="O_"))
        )


def test_unknown_option_names_are_refused() -> None:
    with pytest.raises(TypeError, match="nope"):
        ConfigFlags(Sample, env_prefix="T_", options={"nope": Option()})


def test_convert() -> None:
    assert convert(int, "4") == 4 and convert(bool, "off") is False
    assert convert(tuple[int, ...], "1, 2,") == (1, 2)
    assert convert(float | None, " ") is None
    with pytest.raises(ValueError):
        convert(int, "4.5")


def test_a_new_config_field_becomes_a_flag_in_every_console_script() -> None:
    """The real configs: every scalar field has a flag (no hand-written list to forget)."""
    from peer_agent.agent.cli import FLAGS as AGENT
    from peer_agent.agent.config import AgentConfig
    from signaling.cli import FLAGS as SIGNALING
    from signaling.config import SignalingConfig

    assert {f.name for f in SIGNALING.fields} == set(SignalingConfig.__dataclass_fields__)
    agent_names = {f.name for f in AGENT.fields}
    assert {"max_peers", "store_max_bytes", "connect_grace_s", "tracker_token"} <= agent_names
    assert not agent_names & {"scheduler", "playback", "cdn", "integrity", "swarm"}
    assert AgentConfig.__dataclass_fields__.keys() >= agent_names
