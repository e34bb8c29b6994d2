"""OfflinePlanner: exact count, distinct products, deterministic per (theme, style, seed);
plans come back through the port as `Plans`, with a note."""

from __future__ import annotations

from core.planner import OfflinePlanner, plan_offline
from core.ports import Plans
from core.request import CampaignRequest, Style


def _req(**kw: object) -> CampaignRequest:
    base: dict[str, object] = {
        "theme": "retro cats",
        "products": 5,
        "style": Style.NEON,
        "seed": 42,
    }
    base.update(kw)
    return CampaignRequest(**base)  # type: ignore[arg-type]


async def test_plans_are_exactly_n_and_distinct() -> None:
    for n in (1, 5, 20):
        plans = await OfflinePlanner().plan(_req(products=n))
        assert [p.index for p in plans] == list(range(n))
        assert len({p.name for p in plans}) == n
        assert len({p.product_type for p in plans}) == n  # 20 types: no repeats up to 20
        for p in plans:
            assert p.name
            assert p.tagline
            assert p.image_prompt
            assert p.video_prompt
            assert "retro cats" in p.image_prompt


def test_same_theme_style_seed_gives_same_plans() -> None:
    assert plan_offline(_req()) == plan_offline(_req())
    assert plan_offline(_req(seed=None)) == plan_offline(_req(seed=None))


def test_seed_style_or_theme_change_the_plans() -> None:
    base = plan_offline(_req())
    assert plan_offline(_req(seed=43)) != base
    assert plan_offline(_req(style=Style.VINTAGE)) != base
    assert plan_offline(_req(theme="space dogs")) != base


def test_audience_reaches_the_prompts() -> None:
    plans = plan_offline(_req(audience="indie gamers"))
    assert all("indie gamers" in p.image_prompt for p in plans)


def test_long_theme_keeps_names_short() -> None:
    plans = plan_offline(_req(theme="a " + "very " * 60 + "long theme"))
    assert all(len(p.name) <= 80 for p in plans)


async def test_plans_come_through_the_port_with_an_empty_note() -> None:
    plans = await OfflinePlanner().plan(_req())
    assert isinstance(plans, Plans) and plans.note == ""
    assert plans == plan_offline(_req())  # still the list of plans


def test_plans_keep_their_note_and_compare_as_lists() -> None:
    plain = plan_offline(_req(products=2))
    noted = Plans(plain, note="fell back to the offline planner: timeout")
    assert noted == list(plain) and noted.note.endswith("timeout")
    assert Plans().note == "" and Plans() == []
