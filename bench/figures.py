"""What a benchmark reports: figures, each with its unit, and a ratio and target where a baseline exists."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    """One measured number. `key` is stable across runs (the JSON's), `label` is for people."""

    key: str
    label: str
    value: float
    unit: str
    baseline: float | None = None  # the bare rate or the one-at-a-time time this is compared with
    baseline_label: str = ""
    ratio: float | None = None  # value / baseline, or baseline / value for times (always "higher is better")
    target: float | None = None  # the ratio (or value) the issue asks for
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return (self.ratio if self.ratio is not None else self.value) >= self.target

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (fraction 0.5 is the median, 0.99 the 99th)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)
