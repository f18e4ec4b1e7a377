"""Traffic split: which arm of a deployment's ``split`` answers one request. Pure, given a random source.

Without a sticky value an arm is drawn at random, in proportion to the weights.

With one (the ``sticky_header``'s value) the arm comes from weighted rendezvous hashing
(highest random weight): every arm scores ``-weight / ln(u)``, where ``u`` in (0, 1) is a hash of
the arm's name and the value, and the highest score wins. ``-ln(u) / weight`` is exponentially
distributed with rate ``weight`` over values, so arm *i* wins for a share ``w_i / sum(w)`` of them,
and the same value always wins the same arm. Because an arm's score depends only on its own
weight, raising one arm's weight moves users only *to* that arm, and only the share its weight
gained; no user moves between the others. Arms are hashed by name, not position, so reordering
the list or adding an arm moves nobody who does not go to the new arm.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from hashlib import blake2b

from gateway.config import SplitArm

_BITS = 52  # u = (k + 0.5) / 2**52 with k < 2**52 is exact in a double, never 0 or 1
_SCALE = 2.0**-_BITS


def choose(arms: Sequence[SplitArm], sticky: str | None, rng: random.Random) -> SplitArm:
    """The arm for a request: by rendezvous on ``sticky`` when given, else at random by weight."""
    if len(arms) == 1:
        return arms[0]
    if sticky is not None:
        return rendezvous(arms, sticky)
    return weighted(arms, rng.random())


def weighted(arms: Sequence[SplitArm], draw: float) -> SplitArm:
    """The arm a uniform ``draw`` in [0, 1) falls on, each arm taking a slice as wide as its weight."""
    point = draw * sum(_weight(arm) for arm in arms)
    for arm in arms:
        point -= _weight(arm)
        if point < 0:
            return arm
    return arms[-1]  # float rounding at the very top of the range


def shares(arms: Sequence[SplitArm]) -> list[float]:
    """Each arm's expected share of the traffic, in order: its weight over the sum (what ``weighted`` draws)."""
    total = sum(_weight(arm) for arm in arms)
    return [_weight(arm) / total for arm in arms]


def rendezvous(arms: Sequence[SplitArm], value: str) -> SplitArm:
    """The arm with the highest weighted score for ``value``: stable for the value while arms stay."""
    return max(arms, key=lambda arm: score(arm, value))


def score(arm: SplitArm, value: str) -> float:
    """``-weight / ln(u)``, ``u`` in (0, 1) hashed from the arm's name and the value."""
    digest = blake2b(f"{arm.name}\x00{value}".encode(), digest_size=8).digest()
    unit = ((int.from_bytes(digest, "big") >> (64 - _BITS)) + 0.5) * _SCALE  # so ln(u) < 0
    return -_weight(arm) / math.log(unit)


def _weight(arm: SplitArm) -> float:
    # Validated at load: every arm has a positive weight.
    return arm.weight or 0.0
