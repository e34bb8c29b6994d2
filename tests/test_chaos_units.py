"""benchmarks/chaos.py: its pure parts (no subprocesses, no timing)."""

from __future__ import annotations

import contextlib
import json
import random
from collections import Counter
from typing import Any

import aiohttp

from benchmarks import chaos

IMAGE, VIDEO, TEXT = "black-forest-labs/flux-schnell", "bytedance/seedance-1-lite", "meta/llama"


def image_input(n: int, product: int) -> dict[str, Any]:
    return {"prompt": f"product photo of a chaos {n} item number {product}", "seed": 100 + product}


def video_input(n: int, product: int, image_id: str) -> dict[str, Any]:
    return {
        "prompt": f"slow orbit around chaos {n} item {product}",
        "seed": 100 + product,
        "image": f"http://fake/files/{image_id}.png",
    }


def prediction(pid: str, model: str, inputs: dict[str, Any], status: str = "succeeded") -> Any:
    return {
        "id": pid,
        "model": model,
        "input_key": json.dumps(inputs, sort_keys=True),
        "status": status,
    }


def step(
    pid: str | None, name: str, product: int, status: str = "succeeded", model: str = IMAGE
) -> chaos.StepRef:
    return chaos.StepRef("c1", 1, product, name, status, pid, f"/out/{pid}", model)


STATS: dict[str, Any] = {
    "predictions": [
        prediction("t1", TEXT, {"prompt": 'Plan exactly 2 products for the theme "chaos 1".'}),
        prediction("i1", IMAGE, image_input(1, 1)),
        prediction("i1b", IMAGE, image_input(1, 1)),  # the same step created twice
        prediction("i2", IMAGE, image_input(1, 2)),
        prediction("v1", VIDEO, video_input(1, 1, "i1")),
        prediction("v1b", VIDEO, video_input(1, 1, "i1b"), "canceled"),  # other image, same step
        prediction("v2", VIDEO, video_input(1, 2, "i2")),
    ],
    "cancels": ["v1b"],
}
STEPS = [
    step("i1b", "image", 0),
    step("v1", "video", 0, model=VIDEO),
    step("i2", "image", 1),
    step("v2", "video", 1, model=VIDEO),
]


def test_step_key_ignores_the_image_input_but_not_the_seed() -> None:
    a = chaos.step_key(VIDEO, json.dumps(video_input(1, 1, "x")))
    assert a == chaos.step_key(VIDEO, json.dumps(video_input(1, 1, "y")))
    other_seed = dict(video_input(1, 1, "x"), seed=7)
    assert a != chaos.step_key(VIDEO, json.dumps(other_seed))
    assert a != chaos.step_key(IMAGE, json.dumps(video_input(1, 1, "x")))
    assert chaos.step_key(IMAGE, "not json") == json.dumps([IMAGE, "not json"])


def test_campaign_number_comes_from_the_prompt() -> None:
    assert chaos.campaign_number(json.dumps(image_input(12, 3))) == 12
    assert chaos.campaign_number(json.dumps({"prompt": "retro cats"})) is None


def test_duplicates_are_counted_per_step() -> None:
    groups = chaos.group_predictions(chaos.predictions_from(STATS), STEPS)
    assert [(g.kind, g.duplicates, g.product) for g in groups] == [
        ("plan", 0, None),
        ("image", 1, 0),
        ("image", 0, 1),
        ("video", 1, 0),
        ("video", 0, 1),
    ]
    assert {g.number for g in groups} == {1}
    rows = {r.kind: r for r in chaos.duplicate_rows(groups)}
    assert rows["plan"] == chaos.DuplicateRow("plan", 1, 1, 0, 0)
    assert rows["image"] == chaos.DuplicateRow("image", 3, 2, 1, 1)
    assert rows["video"] == chaos.DuplicateRow("video", 3, 2, 1, 1)


def test_no_duplicates_when_every_step_was_created_once() -> None:
    stats = {"predictions": [p for p in STATS["predictions"] if p["id"] not in ("i1b", "v1b")]}
    steps = [step("i1", "image", 0), *STEPS[1:]]
    groups = chaos.group_predictions(chaos.predictions_from(stats), steps)
    assert sum(g.duplicates for g in groups) == 0
    assert chaos.lost_outputs(groups, steps, exists=lambda _p: True) == []


def test_lost_outputs() -> None:
    groups = chaos.group_predictions(chaos.predictions_from(STATS), STEPS)
    assert chaos.lost_outputs(groups, STEPS, exists=lambda _p: True) == []
    missing = chaos.lost_outputs(groups, STEPS, exists=lambda p: p != "/out/v2")
    assert [(x.product, x.kind, x.reason) for x in missing] == [
        (1, "video", "output file missing: /out/v2")
    ]
    failed = [*STEPS[:3], step("v2", "video", 1, status="failed", model=VIDEO)]
    groups = chaos.group_predictions(chaos.predictions_from(STATS), failed)
    lost = chaos.lost_outputs(groups, failed, exists=lambda _p: True)
    assert [(x.kind, x.reason) for x in lost] == [
        ("video", "prediction v2 succeeded; the step is failed")
    ]
    unreferenced = STEPS[:3]  # no step names v2: paid for, never used
    groups = chaos.group_predictions(chaos.predictions_from(STATS), unreferenced)
    lost = chaos.lost_outputs(groups, unreferenced, exists=lambda _p: True)
    assert [(x.number, x.kind, x.reason) for x in lost] == [
        (1, "video", "prediction v2 succeeded; no step refers to it")
    ]


def test_plan_disruptions_caps_stops_and_covers_every_kind() -> None:
    plan = chaos.plan_disruptions(20, random.Random(1))
    counts = Counter(d.kind for d in plan)
    assert counts == {"stop": 4, "kill": 7, "term": 5, "none": 4}
    assert all(0.2 <= d.at_s <= 3.0 for d in plan)
    assert chaos.plan_disruptions(20, random.Random(1)) == plan  # the seed reproduces it
    assert Counter(d.kind for d in chaos.plan_disruptions(5, random.Random(2))) == {
        "stop": 1,
        "kill": 2,
        "term": 1,
        "none": 1,
    }
    assert Counter(d.kind for d in chaos.plan_disruptions(1, random.Random(3))) == {"kill": 1}


def findings(**changes: Any) -> chaos.Findings:
    runs = [
        chaos.CampaignRun(1, chaos.Disruption("kill", 1.5), "kill -9 at 1.5 s", "c1", "succeeded"),
        chaos.CampaignRun(2, chaos.Disruption("none", 0.5), "none", "c2", "succeeded"),
    ]
    values: dict[str, Any] = {
        "runs": runs,
        "groups": chaos.group_predictions(chaos.predictions_from(STATS), STEPS),
        "lost": [],
        "cancels": [],
        "integrity": [],
        "unfinished": [],
        "injected": {"create": 3, "get": 9},
        "reads": 90,
        "seconds": 42.0,
    }
    return chaos.Findings(**{**values, **changes})


def test_targets() -> None:
    met = {t.name: t.met for t in chaos.targets(findings(groups=[]))}
    assert all(met.values())
    f = findings(cancels=["v1b"], integrity=["integrity_check: page 3 broken"], seconds=700.0)
    missed = {t.name: t for t in chaos.targets(f)}
    assert not missed["duplicate creates"].met and missed["duplicate creates"].value == "2"
    assert not missed["cancels sent"].met
    assert not missed["DB integrity"].met
    assert not missed["time taken"].met
    assert missed["campaigns completed (succeeded)"].value == "2 / 2"
    assert missed["lost outputs"].met


def test_report_table() -> None:
    report = chaos.render_report(
        findings(cancels=["v1b"], cancel_owners={"v1b": 1}),
        command="python -m benchmarks.chaos --campaigns 2 --seed 7",
        machine="test box",
        date="2026-01-01 00:00 UTC",
    )
    assert "- Command: `python -m benchmarks.chaos --campaigns 2 --seed 7`" in report
    assert "| duplicate creates | 2 | 0 | **no** |" in report
    assert "| cancels sent | 1 | 0 (no user cancels) | **no** |" in report
    assert "| DB integrity | ok | integrity_check ok, no foreign key violations | yes |" in report
    assert "| image | 3 | 2 | 1 | 1 |" in report
    assert "| video | 3 | 2 | 1 | 1 |" in report
    assert "| #1 `c1` | 1 | image | 2 | `i1` succeeded, `i1b`* succeeded |" in report
    assert "| kill | 1 | 1 | 1 | 2 | 1 | 0 | 0 | 0.0 |" in report  # campaign 1's dups, cancel
    assert "| #2 | none | `c2` | succeeded | 0 | 0 | 0 | 0 | 0.0 |  |" in report
    assert "3 create and 9 read faults over 7 creates and 90 reads" in report


def test_markdown_table_aligns_numbers_right() -> None:
    table = chaos.markdown_table(["a", "n", "text"], [("x", 1, "kill -9"), ("y", "-", "none")])
    assert table.splitlines()[1] == "| --- | ---: | --- |"


async def test_the_fake_reports_what_the_soak_reads() -> None:
    from tests.fakes.replicate import FakeReplicate

    fake = FakeReplicate(fault_rate=1.0, seed=5)  # every create and read gets a random fault
    base = await fake.start()
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(4):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.post(
                        f"{base}/v1/models/{IMAGE}/predictions", json={"input": image_input(3, 1)}
                    ) as reply:
                        assert reply.status in (429, 500, 502, 503)
            async with http.get(f"{base}/v1/predictions/nope") as reply:
                assert reply.status in (429, 503)
            fake.fault_rate = 0.0
            made = fake._new(IMAGE, "hidden", image_input(3, 2))
            async with http.post(f"{base}/v1/predictions/{made['id']}/cancel") as reply:
                assert reply.status == 200
            async with http.get(f"{base}/_fake/stats") as reply:
                stats = await reply.json()
    finally:
        await fake.stop()
    assert stats["injected"] == {"create": 4, "get": 1}
    assert stats["cancels"] == [made["id"]]
    found = chaos.predictions_from(stats)
    assert found[-1] == chaos.Prediction(
        made["id"], IMAGE, json.dumps(image_input(3, 2), sort_keys=True), "canceled"
    )
    first = json.dumps(image_input(3, 1), sort_keys=True)
    assert {p.input_key for p in found[:-1]} <= {first}  # made by drop_after faults, if any
