"""core/retry.py: delays (exponential, jitter, cap, hints) and the retry loop."""

from __future__ import annotations

import pytest

from core.retry import Backoff, retrying


def _low(a: float, _b: float) -> float:
    """A 'random' draw that always picks the bottom of the range."""
    return a


def _high(_a: float, b: float) -> float:
    return b


class Flaky:
    """Fails with the given errors, one per call, then answers "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class Sleeps:
    """An injected sleep that records instead of waiting."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_delays_double_from_base_with_jitter_down_to_half() -> None:
    policy = Backoff(base_s=1.0, cap_s=60.0)
    assert [policy.delay(n, uniform=_high) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert [policy.delay(n, uniform=_low) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]


def test_delays_stop_at_the_cap_even_after_many_attempts() -> None:
    policy = Backoff(base_s=45.0, cap_s=60.0)
    assert policy.delay(2, uniform=_high) == 60.0  # 90 s would be next
    assert policy.delay(2, uniform=_low) == 30.0
    assert policy.delay(10_000, uniform=_high) == 60.0  # no overflow on a long outage


def test_without_jitter_delays_are_exact_and_draw_nothing() -> None:
    def no_draws(_a: float, _b: float) -> float:
        raise AssertionError("an exact policy must not draw")

    policy = Backoff(base_s=1.0, jitter=0.0)
    assert [policy.delay(n, uniform=no_draws) for n in (1, 2)] == [1.0, 2.0]


@pytest.mark.parametrize(
    ("hint", "expected_low", "expected_high"),
    [(2.0, 2.0, 2.1), (3600.0, 60.0, 60.0), (-5.0, 0.0, 0.0)],
    ids=["honoured", "capped", "never-negative"],
)
def test_a_server_hint_wins_within_the_cap(
    hint: float, expected_low: float, expected_high: float
) -> None:
    policy = Backoff(base_s=1.0, cap_s=60.0)
    assert policy.delay(5, retry_after=hint, uniform=_low) == expected_low
    assert policy.delay(5, retry_after=hint, uniform=_high) == pytest.approx(expected_high)


def test_attempts_bound_what_may_follow() -> None:
    assert [Backoff(attempts=3).allows(n) for n in (1, 2, 3)] == [True, True, False]
    assert Backoff().allows(1_000_000)  # None: no limit


async def test_retrying_sleeps_the_policys_delays_between_attempts() -> None:
    flaky, sleeps = Flaky(OSError("a"), OSError("b")), Sleeps()
    policy = Backoff(base_s=1.0, jitter=0.0, attempts=3)
    assert await retrying(flaky, policy, OSError, sleep=sleeps) == "ok"
    assert (flaky.calls, sleeps.slept) == (3, [1.0, 2.0])


async def test_retrying_raises_the_last_failure_without_waiting_after_it() -> None:
    flaky, sleeps = Flaky(OSError("a"), OSError("b"), OSError("c")), Sleeps()
    with pytest.raises(OSError, match="b"):
        await retrying(flaky, Backoff(jitter=0.0, attempts=2), OSError, sleep=sleeps)
    assert (flaky.calls, sleeps.slept) == (2, [1.0])


async def test_other_errors_are_not_retried() -> None:
    flaky, sleeps = Flaky(ValueError("bad input")), Sleeps()
    with pytest.raises(ValueError, match="bad input"):
        await retrying(flaky, Backoff(attempts=5), OSError, sleep=sleeps)
    assert (flaky.calls, sleeps.slept) == (1, [])


async def test_between_replaces_the_sleep_and_sees_each_failure() -> None:
    flaky, sleeps = Flaky(OSError("a"), TimeoutError("b")), Sleeps()
    seen: list[tuple[str, int]] = []

    async def between(exc: OSError, attempt: int) -> None:
        seen.append((str(exc), attempt))

    result = await retrying(flaky, Backoff(), OSError, between=between, sleep=sleeps)
    assert result == "ok"
    assert (seen, sleeps.slept) == ([("a", 1), ("b", 2)], [])
