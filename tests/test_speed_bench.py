"""benchmarks/speed_bench.py: its pure functions, with hand-computed values (no timing, no runs)."""

from __future__ import annotations

import pytest

from benchmarks import speed_bench as bench
from core.model import (
    Campaign,
    CampaignStatus,
    PlanCall,
    Product,
    ProductPlan,
    StepName,
    StepRecord,
)
from core.request import CampaignRequest


def test_old_tool_schedules() -> None:
    # local: 0.25 + ceil(10/3)=4 x 0.35 + 10 x 3.2; Ray: 0.25 + ceil(10/4)=3 x 0.35 + 5 x 3.2
    assert bench.old_local_s(10) == pytest.approx(33.65)
    assert bench.old_local_s(3) == pytest.approx(10.2)
    assert bench.old_ray_s(10) == pytest.approx(17.3)
    assert bench.old_ray_s(3) == pytest.approx(7.0)
    assert bench.old_local_s(1, plan=0, image=30, video=300) == 330


def test_old_local_bars_match_the_formula() -> None:
    bars = bench.old_local_bars(4)
    assert bars[0] == bench.Bar("plan", "plan", 0.0, 0.25)
    images = [b for b in bars if b.kind == "image"]
    assert [b.start for b in images] == pytest.approx([0.25, 0.25, 0.25, 0.6])
    videos = [b for b in bars if b.kind == "video"]
    assert videos[0].start == pytest.approx(0.95)  # after ceil(4/3) = 2 image rounds
    assert videos[-1].end == pytest.approx(bench.old_local_s(4)) == pytest.approx(13.75)


def test_efficiency_is_the_critical_path_over_the_makespan() -> None:
    assert round(bench.CRITICAL_PATH_S, 9) == 3.615  # 0.05 + 150 tokens at 10,000/s + 0.35 + 3.2
    assert round(bench.DEFAULT_LIMIT_S, 9) == 0.35  # 0.05 + 150 tokens at 1,000/s + 0.15
    assert bench.efficiency(3.615) == pytest.approx(1.0)
    assert bench.efficiency(7.23) == pytest.approx(0.5)
    assert bench.efficiency(10.0, bound=21.45) == pytest.approx(2.145)
    assert bench.efficiency(0.0) == 0.0


def test_rate_bound() -> None:
    # 201 creates at 10/s, 20 at once: 181 / 10 = 18.1 s, then the last video's 3.2 s
    assert bench.rate_bound_s(100, 600, 2.0) == pytest.approx(21.3)
    assert bench.rate_bound_s(5, 600, 2.0) == pytest.approx(bench.CRITICAL_PATH_S)  # in burst
    # 1/s, capacity max(1, 0.5) = 1: of 11 creates 10 wait 10 s, then the video
    assert bench.rate_bound_s(5, 60, 0.5) == pytest.approx(13.2)


def test_markdown_table() -> None:
    table = bench.markdown_table(["a", "b", "c"], [[1, "x", 2.5], ["y", "", "z"]])
    assert table == "| a | b | c |\n| --- | ---: | ---: |\n| 1 | x | 2.5 |\n| y |  | z |\n"


def test_verdict_and_formatting() -> None:
    assert bench.verdict(0.96, 0.95) == "met"
    assert bench.verdict(0.9, 0.95) == "missed by 0.05 (95% of target)"
    assert bench.verdict(0, 0, at_most=True) == "met"
    assert bench.verdict(3, 0, at_most=True) == "missed by 3"
    assert bench.verdict(None, 1) == "n/a"
    assert bench.fmt(None) == "n/a"
    assert bench.fmt(1234.5, ",.0f", " s") == "1,234 s"
    assert bench.spread([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)
    assert bench.stat({"a": 2, "b": None}, "a") == 2.0
    assert bench.stat({"a": 2, "b": None}, "b") is None


def test_bars_and_overheads_from_stored_records() -> None:
    steps = (
        StepRecord(0, StepName.IMAGE, started_at=100.3, finished_at=100.65),
        StepRecord(0, StepName.VIDEO, started_at=100.66, finished_at=103.9),
    )
    plan = ProductPlan(0, "Mug", "mug", "t", "image prompt", "video prompt")
    campaign = _campaign(
        (Product(plan, steps),),
        {"outline": PlanCall("o1"), "details/0-0": PlanCall("d1")},
        started_at=100.001,
        finished_at=103.95,
    )
    made = [
        {"id": "o1", "created_at": 100.01, "completed_at": 100.1},
        {"id": "d1", "created_at": 100.05, "completed_at": 100.25},
    ]
    run = bench.Run(1, 3.95, 100.0, campaign, "succeeded", delivered=[3.91])
    run.stats = {"predictions": made}
    bars = bench.bars_of(run)
    assert [(b.row, b.kind) for b in bars] == [
        ("plan", "plan"),  # the outline
        ("P01", "plan"),  # the product's details, on its row
        ("P01", "image"),
        ("P01", "video"),
        ("finalize", "finalize"),
    ]
    assert [b.start for b in bars] == pytest.approx([0.01, 0.05, 0.3, 0.66, 3.91])
    assert [b.end for b in bars] == pytest.approx([0.1, 0.25, 0.65, 3.9, 3.95])
    assert (run.first, run.last, run.finalize) == pytest.approx((3.91, 3.91, 0.04))
    extra = bench.overheads(run)
    assert extra["image"] == pytest.approx([0.0])
    assert extra["video"] == pytest.approx([0.04])
    assert extra["finalize"] == pytest.approx([0.04])
    assert extra["submit"] == pytest.approx([0.001])
    assert bench.pick([run], 1) is run
    assert bench.pick([run], 10) is None


def test_the_last_products_path_from_the_fakes_times() -> None:
    def product(i: int, image: tuple[float, float], video: tuple[float, float]) -> Product:
        steps = (
            StepRecord(i, StepName.IMAGE, provider_id=f"i{i}", finished_at=100 + image[1]),
            StepRecord(i, StepName.VIDEO, provider_id=f"v{i}", finished_at=100 + video[1]),
        )
        return Product(ProductPlan(i, f"P{i}", "mug", "t", "ip", "vp"), steps)

    campaign = _campaign(
        (product(0, (0.2, 0.55), (0.57, 3.8)), product(1, (0.3, 0.65), (0.7, 3.95))),
        {
            n: PlanCall(i)
            for n, i in (("outline", "o"), ("details/0-0", "d0"), ("details/1-1", "d1"))
        },
    )
    times = {"o": (0.01, 0.1), "d0": (0.07, 0.14), "d1": (0.09, 0.16), "i0": (0.15, 0.5),
             "v0": (0.52, 3.72), "i1": (0.18, 0.53), "v1": (0.56, 3.76)}  # fmt: skip
    run = bench.Run(2, 4.0, 100.0, campaign, "succeeded", delivered=[3.8, 3.9])
    run.stats = {"predictions": [
        {"id": k, "created_at": 100 + a, "completed_at": 100 + b} for k, (a, b) in times.items()
    ]}  # fmt: skip
    path = dict(bench.last_path(run))  # product 1: its video finished last
    assert list(path.values()) == pytest.approx([0.01, 0.08, 0.07, 0.02, 0.35, 0.03, 3.2, 0.14])
    assert list(path)[-1].startswith("-> product delivered")
    assert bench.last_path(bench.Run(2, 4.0, 100.0, None, "failed")) == []


def _campaign(
    products: tuple[Product, ...],
    plan_calls: dict[str, PlanCall],
    started_at: float | None = None,
    finished_at: float | None = None,
) -> Campaign:
    """A finished campaign with videos, created at t=100, as the bench reads it back."""
    return Campaign(
        id="c1",
        request=CampaignRequest(theme="cats", products=len(products), videos=True),
        status=CampaignStatus.SUCCEEDED,
        created_at=100.0,
        executor="local",
        generator="replicate",
        products=products,
        plan_calls=plan_calls,
        started_at=started_at,
        finished_at=finished_at,
    )
