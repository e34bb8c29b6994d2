"""Time left for a running campaign, from measured step durations.

Each step is expected to take what steps of its kind and model took lately
(the median of the most recent ones stored, newest first), not an equal share
of the elapsed time: a video takes many times an image. Products run side by
side, so the campaign has at least as long left as its slowest product's
chain; when more steps of a kind are left than the scheduler runs at once
(`Limits`), they run in waves (`campaign_left` plays them out), and a step
already waiting in line behind other campaigns starts no earlier than its
place in that line allows.
"""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.model import StepName, StepStatus

# Used until this deployment has measured a step of that kind and the generator knows no
# typical duration of its model (Replicate-ish latencies).
DEFAULT_S: Mapping[StepName, float] = {StepName.IMAGE: 15.0, StepName.VIDEO: 120.0}
Guess = Callable[[StepName, str | None], float | None]
"""The generator's typical seconds for a step on a model (None: the configured one), if known."""


def _no_guess(_step: StepName, _model: str | None) -> float | None:
    return None


RECENT = 20  # samples per (step, model): recent history outweighs old


@dataclass(frozen=True)
class Sample:
    """How long one finished step took (wall time from start to finish)."""

    step: StepName
    model: str | None
    seconds: float


class Durations:
    """Typical seconds per step and model, learned from samples given newest first."""

    def __init__(
        self, samples: Iterable[Sample] = (), *, recent: int = RECENT, guess: Guess = _no_guess
    ) -> None:
        self.samples = tuple(samples)
        self.recent = recent
        self.guess = guess
        by_model: dict[tuple[StepName, str | None], list[float]] = {}
        by_step: dict[StepName, list[float]] = {}
        for sample in self.samples:
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
        """This model's recent median, else the model's typical duration (`guess`) for a named
        model, else the step's median (any model), else the guess for the configured model,
        else DEFAULT_S."""
        if (step, model) in self._by_model:
            return self._by_model[(step, model)]
        guessed = self.guess(step, model)
        if model is not None and guessed:
            return guessed
        return self._by_step.get(step) or guessed or DEFAULT_S[step]

    def newer(self, samples: Sequence[Sample]) -> Durations:
        """These durations with more recent samples (given newest first) in front."""
        if not samples:
            return self
        return Durations((*samples, *self.samples), recent=self.recent, guess=self.guess)

    def __deepcopy__(self, _memo: dict[int, Any]) -> Durations:
        return self  # never changed once made: snapshots share it


@dataclass(frozen=True)
class Pace:
    """What a running campaign's ETA is computed from: stored durations and the slots per step."""

    durations: Durations = field(default_factory=Durations)
    slots: Mapping[StepName, int] = field(default_factory=dict)  # steps of a name run at once

    def __deepcopy__(self, _memo: dict[int, Any]) -> Pace:
        return self  # never changed once made: snapshots share it


@dataclass(frozen=True)
class StepState:
    """What the ETA needs of a step: its name, status, when it started, model, place in line."""

    name: StepName
    status: StepStatus
    started_at: float | None
    model: str | None = None
    queued: int | None = None  # its place in line for a slot, while it waits for one


def _remaining(expected: float, started_at: float | None, now: float) -> float:
    """What is left of a running step; overdue: "almost done", never zero."""
    ran = now - started_at if started_at is not None else 0.0
    return max(expected * 0.05, expected - ran)


def campaign_left(
    products: Sequence[Sequence[StepState]],
    durations: Durations,
    now: float,
    slots: Mapping[StepName, int] | None = None,
) -> float | None:
    """Seconds until the last product is done, or None once nothing is left to run.

    Plays the steps out: each product's chain in order (a step is ready when
    the one before it ends), and each step name on at most `slots[name]` slots
    at once (running steps hold theirs first; a missing name is unlimited).
    A step waiting in line at place p starts no earlier than (p - 1/2) / slots
    of its typical duration (the line may hold other campaigns' steps).
    Never less than the slowest product's chain. O(n log n).
    """
    slots = slots or {}
    free: dict[StepName, list[float]] = {}  # per name: a heap of times slots become free
    ready = [0.0] * len(products)  # when each chain's next step may start
    end = 0.0
    for i, steps in enumerate(products):  # running steps hold their slots first
        for step in steps:
            if step.status is StepStatus.RUNNING:
                left = _remaining(durations.typical(step.name, step.model), step.started_at, now)
                free.setdefault(step.name, []).append(left)
                ready[i] = max(ready[i], left)
                end = max(end, left)
    for times in free.values():
        heapq.heapify(times)
    stage = 0
    while True:
        wave = [
            (ready[i], i, steps[stage])
            for i, steps in enumerate(products)
            if stage < len(steps) and steps[stage].status is StepStatus.PENDING
        ]
        if not wave and all(stage >= len(steps) for steps in products):
            break
        for at, i, step in sorted(wave, key=lambda item: (item[0], item[1])):
            expected = durations.typical(step.name, step.model)
            limit = slots.get(step.name)
            if step.queued is not None and limit:
                at = max(at, (step.queued - 0.5) / limit * expected)  # others' steps ahead too
            times = free.setdefault(step.name, [])
            if limit is not None and len(times) >= limit:
                at = max(at, heapq.heappop(times))
            ready[i] = at + expected
            heapq.heappush(times, ready[i])
            end = max(end, ready[i])
        stage += 1
    slowest = max((_chain(steps, durations, now) for steps in products), default=0.0)
    left = max(end, slowest)
    return left if left > 0 else None


def _chain(steps: Sequence[StepState], durations: Durations, now: float) -> float:
    """Seconds left in one product's chain: the running step's rest plus the pending ones."""
    left = 0.0
    for step in steps:
        if step.status is StepStatus.PENDING:
            left += durations.typical(step.name, step.model)
        elif step.status is StepStatus.RUNNING:
            left += _remaining(durations.typical(step.name, step.model), step.started_at, now)
    return left
