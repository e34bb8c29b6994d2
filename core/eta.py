"""Time left for a running campaign, from measured step durations.

Each step is expected to take what steps of its kind and model took lately
(the median of the most recent ones stored, newest first), not an equal share
of the elapsed time: a video takes many times an image. Products run side by
side, so the campaign has as long left as its slowest product's chain.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from core.model import StepName, StepStatus

# Used until this deployment has measured a step of that kind (Replicate-ish latencies).
DEFAULT_S: Mapping[StepName, float] = {StepName.IMAGE: 15.0, StepName.VIDEO: 120.0}
RECENT = 20  # samples per (step, model): recent history outweighs old


@dataclass(frozen=True)
class Sample:
    """How long one finished step took (wall time from start to finish)."""

    step: StepName
    model: str | None
    seconds: float


class Durations:
    """Typical seconds per step and model, learned from samples given newest first."""

    def __init__(self, samples: Iterable[Sample], *, recent: int = RECENT) -> None:
        by_model: dict[tuple[StepName, str | None], list[float]] = {}
        by_step: dict[StepName, list[float]] = {}
        for sample in samples:
            if sample.seconds < 0:
                continue
            kept = by_model.setdefault((sample.step, sample.model), [])
            if len(kept) < recent:
                kept.append(sample.seconds)
            any_model = by_step.setdefault(sample.step, [])
            if len(any_model) < recent:
                any_model.append(sample.seconds)
        self._by_model = {k: statistics.median(v) for k, v in by_model.items()}
        self._by_step = {k: statistics.median(v) for k, v in by_step.items()}

    def typical(self, step: StepName, model: str | None = None) -> float:
        """This model's recent median, else the step's (any model), else DEFAULT_S."""
        if (step, model) in self._by_model:
            return self._by_model[(step, model)]
        return self._by_step.get(step, DEFAULT_S[step])

    def per_step(self, models: Mapping[StepName, str | None]) -> dict[StepName, float]:
        """Typical seconds of each step for a campaign using these models."""
        return {step: self.typical(step, models.get(step)) for step in StepName}


@dataclass(frozen=True)
class StepState:
    """What the ETA needs of a step: its name, status and when it started."""

    name: StepName
    status: StepStatus
    started_at: float | None


def chain_left(steps: Iterable[StepState], typical: Mapping[StepName, float], now: float) -> float:
    """Seconds left in one product's chain: the running step's rest plus the pending ones."""
    left = 0.0
    for step in steps:
        expected = typical.get(step.name, DEFAULT_S[step.name])
        if step.status is StepStatus.PENDING:
            left += expected
        elif step.status is StepStatus.RUNNING:
            ran = now - step.started_at if step.started_at is not None else 0.0
            left += max(expected * 0.05, expected - ran)  # overdue: "almost done", never zero
    return left


def time_left(
    products: Iterable[Iterable[StepState]], typical: Mapping[StepName, float], now: float
) -> float | None:
    """Seconds until the slowest product is done, or None once nothing is left to run."""
    lefts = [chain_left(steps, typical, now) for steps in products]
    left = max(lefts, default=0.0)
    return left if left > 0 else None
