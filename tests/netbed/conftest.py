"""The network bed needs root, ``nft``, ``tc`` and /dev/net/tun; elsewhere its tests skip."""

from __future__ import annotations

import os
import shutil

import pytest

NEEDS = ("ip", "tc", "nft")


def bed_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the network bed needs root"
    missing = [tool for tool in NEEDS if shutil.which(tool) is None]
    if missing:
        return f"the network bed needs {', '.join(missing)} (make install-system)"
    if not os.path.exists("/dev/net/tun"):
        return "the network bed needs /dev/net/tun"
    return None


@pytest.fixture
def need_bed() -> None:
    reason = bed_unavailable()
    if reason is not None:
        pytest.skip(reason)
