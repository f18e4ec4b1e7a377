"""What one bench run measured: every sample of every round, as plain data that round-trips JSON.

``bench/run.py`` fills a :class:`Run`; ``bench/report.py`` renders it. Neither imports the other's
internals, and the JSON form lets ``python -m bench --from-json`` re-render without measuring.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Sample:
    """One server measured once on one case at one concurrency, in one round."""

    case: str
    concurrency: int
    server: str
    round: int
    position: int  # place in this round's order, 0 = first
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float | None  # server process tree CPU per answered request
    peak_rss_mb: float | None
    foreign_cpu_pct: float | None  # busy time on the server's core not spent by the server, % of wall

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True, slots=True)
class Block:
    """All rounds of one case at one concurrency, with the machine's load average around them."""

    case: str
    concurrency: int
    orders: list[list[str]]  # the servers' order in each round
    load_before: list[float]  # 1, 5, 15 minute load average
    load_after: list[float]
    seconds: float


@dataclass(slots=True)
class Run:
    meta: dict[str, Any] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    startup_s: dict[str, list[float]] = field(default_factory=dict)
    idle_rss_mb: dict[str, list[float]] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)  # rows from bench.stages
    failures: list[str] = field(default_factory=list)

    def values(self, server: str, case: str, concurrency: int, metric: str) -> list[float]:
        """The metric of each round, in round order, skipping rounds where it was not measured."""
        rows = sorted(self.select(server, case, concurrency), key=lambda s: s.round)
        return [v for v in (getattr(s, metric) for s in rows) if v is not None]

    def select(self, server: str, case: str, concurrency: int) -> list[Sample]:
        return [s for s in self.samples if (s.server, s.case, s.concurrency) == (server, case, concurrency)]

    def paired_ratios(self, a: tuple[str, str], b: tuple[str, str], concurrency: int, metric: str) -> list[float]:
        """a/b for each round in which both (server, case) were measured: interleaving pairs them."""
        left = {s.round: getattr(s, metric) for s in self.select(a[0], a[1], concurrency)}
        right = {s.round: getattr(s, metric) for s in self.select(b[0], b[1], concurrency)}
        return [left[r] / right[r] for r in sorted(left) if left[r] is not None and right.get(r)]

    def to_json(self) -> str:
        doc = dataclasses.asdict(self)
        return json.dumps(doc, indent=1)

    @classmethod
    def from_json(cls, path: Path) -> Run:
        doc = json.loads(path.read_text())
        return cls(
            meta=doc["meta"],
            samples=[Sample(**s) for s in doc["samples"]],
            blocks=[Block(**b) for b in doc["blocks"]],
            startup_s=doc["startup_s"],
            idle_rss_mb=doc["idle_rss_mb"],
            stages=doc.get("stages", []),
            failures=doc["failures"],
        )


@dataclass(frozen=True, slots=True)
class Spread:
    median: float
    low: float
    high: float
    n: int


def spread(values: list[float]) -> Spread | None:
    if not values:
        return None
    return Spread(statistics.median(values), min(values), max(values), len(values))


def ratio_of_medians(a: list[float], b: list[float]) -> float | None:
    if not a or not b or not statistics.median(b):
        return None
    return statistics.median(a) / statistics.median(b)
