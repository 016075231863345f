"""Who joins when, of which kind, and who leaves: a pure function of the scenario and a seed.

Every viewer slot of the scenario is filled from ``join_over_s * i / peers`` on. With churn,
each agent leaves after an exponentially distributed time (rate ``churn_per_min`` per minute,
so that share of the swarm leaves each minute, as in the simulator) and a new agent of the same
kind takes its slot at once. Kinds are dealt by count, not drawn, so 20 % of 20 agents is
exactly 4.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from ..sim.scenario import Scenario
from .config import LoadTestConfig


class Kind(StrEnum):
    NORMAL = "normal"
    LEECH = "leech"  # never uploads
    SLOW = "slow"  # uploads under a low cap
    MALICIOUS = "malicious"  # corrupts every segment it uploads
    FLOOD = "flood"  # keeps 8 requests in flight per link for every segment it hears of
    ROTATE = "rotate"  # corrupts, and comes back with a new peer id after each ban
    LIAR = "liar"  # announces every segment, answers ABSENT to every request
    STALLER = "staller"  # sends half of each segment, then nothing


class Leave(StrEnum):
    END = "end"  # plays until the end of the run
    GRACEFUL = "graceful"  # churn: stops (CLOSE to every neighbour, `stopped` to the tracker)
    ABRUPT = "abrupt"  # churn: connections dropped without a CLOSE


@dataclass(frozen=True)
class AgentSpec:
    index: int
    slot: int
    generation: int
    kind: Kind
    #: Seconds after the run's start (the first join).
    start_s: float
    stop_s: float
    leave: Leave
    seed: int
    worker: int

    @property
    def duration_s(self) -> float:
        return self.stop_s - self.start_s


def deal_kinds(
    peers: int, config: LoadTestConfig, leech_fraction: float, rng: random.Random
) -> list[Kind]:
    """One kind per slot: hostile, slow and leech counts rounded, the rest normal."""
    counts = [
        (Kind.MALICIOUS, round(peers * config.malicious_fraction)),
        (Kind.FLOOD, round(peers * config.flood_fraction)),
        (Kind.ROTATE, round(peers * config.rotate_fraction)),
        (Kind.LIAR, round(peers * config.liar_fraction)),
        (Kind.STALLER, round(peers * config.staller_fraction)),
        (Kind.SLOW, round(peers * config.slow_fraction)),
        (Kind.LEECH, round(peers * leech_fraction)),
    ]
    kinds: list[Kind] = []
    for kind, n in counts:
        kinds += [kind] * min(n, peers - len(kinds))
    kinds += [Kind.NORMAL] * (peers - len(kinds))
    rng.shuffle(kinds)
    # The first viewer in is normal when there is one, so the swarm starts with an uploader.
    if kinds[0] is not Kind.NORMAL and Kind.NORMAL in kinds:
        i = kinds.index(Kind.NORMAL)
        kinds[0], kinds[i] = kinds[i], kinds[0]
    return kinds


def plan_agents(scenario: Scenario, config: LoadTestConfig, workers: int) -> list[AgentSpec]:
    if workers < 1:
        raise ValueError("workers must be >= 1")
    rng = random.Random(scenario.seed)
    kinds = deal_kinds(scenario.peers, config, scenario.leech_fraction, rng)
    rate_per_s = scenario.churn_per_min / 60.0
    specs: list[AgentSpec] = []
    for slot in range(scenario.peers):
        start = scenario.join_over_s * slot / scenario.peers if scenario.peers > 1 else 0.0
        generation = 0
        while True:
            stop = scenario.duration_s
            leave = Leave.END
            if rate_per_s > 0:
                t = start + max(1.0, rng.expovariate(rate_per_s))  # stays >= 1 s
                if t < scenario.duration_s:
                    stop = t
                    abrupt = rng.random() < config.abrupt_fraction
                    leave = Leave.ABRUPT if abrupt else Leave.GRACEFUL
            specs.append(
                AgentSpec(
                    index=len(specs),
                    slot=slot,
                    generation=generation,
                    kind=kinds[slot],
                    start_s=round(start, 3),
                    stop_s=round(stop, 3),
                    leave=leave,
                    seed=scenario.seed * 100_003 + len(specs),
                    worker=slot % workers,
                )
            )
            if leave is Leave.END:
                break
            start, generation = stop, generation + 1
    return sorted(specs, key=lambda s: (s.start_s, s.index))
