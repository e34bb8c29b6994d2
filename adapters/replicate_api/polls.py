"""When to look at a running prediction again: a shared read budget, learned durations, webhooks.

Every in-flight prediction on one event loop is watched here. Its next poll
comes after a fraction of its elapsed time (`POLL_FRACTION`, jittered so that
predictions started together spread their polls: the first of a batch to
finish is then seen after a fraction of one gap), never sooner
than the read budget allows when many are in flight (`POLL_SHARE` of the
account's read rate, spread over them), and at the moment it is expected to
finish once a prediction of the same model has finished before: durations are
learned from the API's own `created_at` / `completed_at`, and closely (every
1% of that duration) for a while once it is due. Until then, the oldest
prediction of each model is polled eight times as often as it would be, and the
others no sooner than eight poll floors apart: the oldest is the one likely to
finish first, and when one prediction of a model finishes, the others of that
model that have run about as long are polled at once. A batch started
together is seen finishing about an eighth of a gap after its first one
(jitter and the read budget aside). The oldest pays for it in reads: a 3.2 s
video at 1:100 is polled ~200 times, each other one 4-10 times; a 320 s one
~1,000 times over its five minutes, ~3 reads a second of the account's 50 (a
follower's floor only matters in its first seconds: real videos take 30-300
s, images and plans are not polled).
Polls ask the read bucket with a priority: the prediction nearest to its
expected end goes first.

A webhook (`deliver`) ends the wait at once; polling stays as the safety net,
so a lost webhook costs latency, never a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from adapters.replicate_api.settings import ReplicateSettings
from adapters.replicate_api.wire import Prediction, Status

POLL_FRACTION = 0.05  # next poll after 5% of the elapsed time (on average)
JITTER = 0.5  # gaps vary by +-50%: predictions started together do not poll together
POLL_SHARE = 0.8  # of the account's read rate, the most polling may use
DUE_WINDOW = 1.25  # past its learned duration, a prediction is polled closely until this
DUE_GAP = 0.01  # ... every 1% of the learned duration
NUDGE_AT = 0.8  # a finish wakes the same model's predictions that ran this share as long
LEAD_SHARE = 0.125  # no duration learned yet: the oldest of a model polls at this share of a gap
EARLY_KEEP = 1000  # webhooks that arrived before their wait began, kept for a while
LEARN_WEIGHT = 0.5  # weight of the newest duration in a model's running estimate


@dataclass
class Watch:
    """One prediction being waited for."""

    prediction_id: str
    model: str
    started: float  # loop time at which it was created (as near as we know)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    delivered: Prediction | None = None  # set by a webhook

    async def nap(self, seconds: float) -> None:
        """Sleep until the next poll, or less if woken (webhook or nudge)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.wake.wait()
        self.wake.clear()


class Polls:
    """The watches of one event loop, and what has been learned about each model."""

    def __init__(
        self,
        settings: ReplicateSettings,
        clock: Callable[[], float],
        jitter: Callable[[], float] = lambda: random.uniform(1 - JITTER, 1 + JITTER),
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._jitter = jitter
        self._watches: dict[str, Watch] = {}
        self._durations: dict[str, float] = {}
        self._early: OrderedDict[str, Prediction] = OrderedDict()

    def watch(self, pid: str, model: str, started: float | None = None) -> Watch:
        """Start watching prediction `pid` (`started`: when it was created, loop time)."""
        watch = Watch(pid, model, self._clock() if started is None else started)
        if (early := self._early.pop(pid, None)) is not None:
            watch.delivered = early
            watch.wake.set()
        self._watches[pid] = watch
        return watch

    def forget(self, watch: Watch) -> None:
        """Stop watching."""
        self._watches.pop(watch.prediction_id, None)

    def delay(self, watch: Watch) -> float:
        """Seconds until this prediction should be polled again."""
        s = self.settings
        elapsed = self._clock() - watch.started
        expected = self._durations.get(watch.model)
        leads = expected is None and self._leads(watch)
        floor = s.poll_min_s
        if expected is None and not leads:
            floor /= LEAD_SHARE  # its model's oldest is watched closely: its finish wakes this one
        gap = max(floor, min(s.poll_max_s, POLL_FRACTION * elapsed)) * self._jitter()
        if leads:
            gap *= LEAD_SHARE  # likely the first of its model to finish: its finish wakes the rest
        elif expected is not None and elapsed < expected:
            gap = min(gap, expected - elapsed)  # be there when it is due
        elif expected is not None and elapsed < DUE_WINDOW * expected:
            gap = min(gap, DUE_GAP * expected)  # overdue: it is finishing about now
        budget = len(self._watches) / (s.read_per_min / 60.0 * POLL_SHARE)
        return max(gap, budget)

    def _leads(self, watch: Watch) -> bool:
        """Whether `watch` is the oldest prediction of its model being waited for."""
        return all(
            other.started >= watch.started
            for other in self._watches.values()
            if other.model == watch.model
        )

    def priority(self, watch: Watch) -> float:
        """Lower first: the prediction expected to finish soonest (or running longest)."""
        elapsed = self._clock() - watch.started
        expected = self._durations.get(watch.model)
        return (expected - elapsed) if expected is not None else -elapsed

    def deliver(self, prediction: Prediction) -> bool:
        """A webhook brought this prediction's final state; True if someone was waiting."""
        pid = prediction.id
        watch = self._watches.get(pid)
        if watch is None:
            self._early[pid] = prediction
            while len(self._early) > EARLY_KEEP:
                self._early.popitem(last=False)
            return False
        watch.delivered = prediction
        watch.wake.set()
        return True

    def nudge(self, prediction_id: str) -> bool:
        """Poll this prediction now (its webhook reached another replica); True if watched."""
        watch = self._watches.get(prediction_id)
        if watch is None:
            return False
        watch.wake.set()
        return True

    def finished(self, watch: Watch, prediction: Prediction) -> None:
        """Learn the model's duration and wake its other predictions that are about as old."""
        if prediction.status is not Status.SUCCEEDED:
            return
        took = prediction.server_duration()
        if took is None:
            took = self._clock() - watch.started
        old = self._durations.get(watch.model)
        self._durations[watch.model] = (
            took if old is None else LEARN_WEIGHT * took + (1 - LEARN_WEIGHT) * old
        )
        now = self._clock()
        for other in self._watches.values():
            if other.model == watch.model and now - other.started >= NUDGE_AT * took:
                other.wake.set()

    def expected(self, model: str) -> float | None:
        """The learned duration of a model's predictions, if any has finished."""
        return self._durations.get(model)
