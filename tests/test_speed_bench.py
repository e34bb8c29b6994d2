"""benchmarks/speed_bench.py: its pure functions, with hand-computed values (no timing, no runs)."""

from __future__ import annotations

import pytest

from benchmarks import speed_bench as bench
from core.model import Campaign, CampaignStatus, Product, ProductPlan, StepName, StepRecord
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
    assert round(bench.CRITICAL_PATH_S, 9) == 3.8
    assert bench.efficiency(3.8) == pytest.approx(1.0)
    assert bench.efficiency(4.0) == pytest.approx(0.95)
    assert bench.efficiency(10.0, bound=21.45) == pytest.approx(2.145)
    assert bench.efficiency(0.0) == 0.0


def test_create_span_bound() -> None:
    # 10/s, 20 in the bucket: the plan's create, 0.25 s, then 20 at once and 180 at 10/s
    assert bench.create_span_bound_s(201, 600, 2.0, 0.25) == pytest.approx(18.25)
    assert bench.create_span_bound_s(21, 600, 2.0, 0.25) == pytest.approx(0.25)  # all in burst
    # 1/s, capacity max(1, 0.5) = 1, refilled by the 2 s plan: 1 at once, then 1/s
    assert bench.create_span_bound_s(5, 60, 0.5, 2.0) == pytest.approx(5.0)


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
    campaign = Campaign(
        id="c1",
        request=CampaignRequest(theme="cats", products=1, videos=True),
        status=CampaignStatus.SUCCEEDED,
        created_at=100.0,
        executor="local",
        generator="replicate",
        started_at=100.001,
        finished_at=103.95,
        products=(Product(plan, steps),),
    )
    run = bench.Run(1, 3.95, 100.0, campaign, "succeeded")
    bars = bench.bars_of(run)
    assert [(b.row, b.kind) for b in bars] == [
        ("plan", "plan"),
        ("P01", "image"),
        ("P01", "video"),
        ("finalize", "finalize"),
    ]
    assert [b.start for b in bars] == pytest.approx([0.001, 0.3, 0.66, 3.9])
    assert [b.end for b in bars] == pytest.approx([0.3, 0.65, 3.9, 3.95])
    extra = bench.overheads(run)
    assert extra["plan"] == pytest.approx([0.049])  # 0.299 s minus the 0.25 s model
    assert extra["image"] == pytest.approx([0.0])
    assert extra["video"] == pytest.approx([0.04])
    assert extra["finalize"] == pytest.approx([0.05])
    assert extra["submit"] == pytest.approx([0.001])
    assert bench.pick([run], 1) is run
    assert bench.pick([run], 10) is None
