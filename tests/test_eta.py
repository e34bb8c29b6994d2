"""The ETA comes from measured durations per model, recent history first."""

from __future__ import annotations

from core.eta import DEFAULT_S, Durations, Sample, StepState, chain_left, time_left
from core.model import StepName, StepStatus

IMAGE, VIDEO = StepName.IMAGE, StepName.VIDEO
PENDING, RUNNING, DONE = StepStatus.PENDING, StepStatus.RUNNING, StepStatus.SUCCEEDED


def test_typical_is_the_median_of_the_most_recent_samples_of_that_model() -> None:
    newest_first = [Sample(VIDEO, "seedance", s) for s in (60, 62, 58)] + [
        Sample(VIDEO, "seedance", 600)
        for _ in range(10)  # an old slow spell, beyond `recent`
    ]
    durations = Durations(newest_first, recent=3)
    assert durations.typical(VIDEO, "seedance") == 60


def test_an_unmeasured_model_falls_back_to_the_step_then_to_the_default() -> None:
    durations = Durations([Sample(IMAGE, "flux", 8.0), Sample(IMAGE, "flux", 10.0)])
    assert durations.typical(IMAGE, "flux") == 9.0
    assert durations.typical(IMAGE, "sdxl") == 9.0  # any image model measured here
    assert durations.typical(VIDEO, "seedance") == DEFAULT_S[VIDEO]


def test_eta_orders_campaigns_by_their_stored_durations_not_by_step_counts() -> None:
    history = Durations(
        [Sample(IMAGE, "flux", 10.0), Sample(VIDEO, "seedance", 100.0), Sample(VIDEO, "fast", 5.0)]
    )
    # Same shape (one image done, one video pending) but different video models:
    shape = [[StepState(IMAGE, DONE, 0.0), StepState(VIDEO, PENDING, None)]]
    slow = time_left(shape, history.per_step({IMAGE: "flux", VIDEO: "seedance"}), now=10.0)
    fast = time_left(shape, history.per_step({IMAGE: "flux", VIDEO: "fast"}), now=10.0)
    assert slow == 100.0 and fast == 5.0
    # An equal share per step would have said the same for both (10 s done per step).


def test_a_running_step_counts_its_rest_and_products_run_side_by_side() -> None:
    typical = {IMAGE: 10.0, VIDEO: 100.0}
    running = [StepState(IMAGE, DONE, 0.0), StepState(VIDEO, RUNNING, 10.0)]
    waiting = [StepState(IMAGE, RUNNING, 0.0), StepState(VIDEO, PENDING, None)]
    assert chain_left(running, typical, now=40.0) == 70.0
    assert chain_left(waiting, typical, now=4.0) == 106.0
    assert time_left([running, waiting], typical, now=40.0) == 100.5  # the slower one: 0.5 + 100
    overdue = [StepState(VIDEO, RUNNING, 0.0)]
    assert 0 < chain_left(overdue, typical, now=500.0) < 10  # late: almost done, never zero


def test_nothing_left_means_no_eta() -> None:
    assert time_left([[StepState(IMAGE, DONE, 0.0)]], {IMAGE: 10.0}, now=5.0) is None
    assert time_left([], {IMAGE: 10.0}, now=5.0) is None
