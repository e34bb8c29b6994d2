"""What each action costs in provider calls: `bot.py reroll/animate` against the fake Replicate.

The figures docs/commands.md quotes are asserted here: a reroll is one image
prediction (plus one video prediction for a product with a video), an animate
one video prediction with the stored image handed on by URL (no upload while
the URL is fresh), and an uploaded image one video prediction, plus one file
upload when the image is larger than REPLICATE_INLINE_MAX_KB (else it goes
inline as a data: URI). Nothing is planned again.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from tests.fakes.replicate import (
    FakeReplicate,
    fake_replicate,  # noqa: F401 (registers the `fake` fixture)
)
from tests.test_replicate_cli import _cli, _env

pytestmark = pytest.mark.slow
IMAGE_MODEL, VIDEO_MODEL = "black-forest-labs/flux-schnell", "bytedance/seedance-1-lite"


def _calls(fake: FakeReplicate, since: int) -> Counter[str]:
    """Creates per model, uploads and cancels after request number `since`."""
    counted: Counter[str] = Counter()
    for method, path, _ in fake.requests[since:]:
        if method == "POST" and path.endswith("/predictions"):
            model = path.removeprefix("/v1/models/").removesuffix("/predictions")
            counted[f"create {model}"] += 1
        elif method == "POST" and path.startswith("/v1/files"):
            counted["upload"] += 1
        elif method == "POST" and path.endswith("/cancel"):
            counted["cancel"] += 1
    return counted


async def test_provider_calls_per_action(fake: FakeReplicate, tmp_path: Path) -> None:
    env = _env(tmp_path, fake)
    code, out, err = await _cli(env, "run", 'theme:"retro cats" products:2 videos:yes', "--json")
    assert code == 0, err
    cid = json.loads(out)["id"]

    before = len(fake.requests)
    code, out, err = await _cli(env, "reroll", cid, "1", "--json")
    assert code == 0, err
    assert _calls(fake, before) == {f"create {IMAGE_MODEL}": 1, f"create {VIDEO_MODEL}": 1}
    summary = json.loads(out)
    assert summary["cost_usd"] == pytest.approx(2 * 0.003 + 2 * 0.18 + 0.003 + 0.18)

    before = len(fake.requests)
    code, out, err = await _cli(env, "animate", cid, "2", "--prompt", "orbit", "--json")
    assert code == 0, err
    assert _calls(fake, before) == {f"create {VIDEO_MODEL}": 1}  # the image goes by its URL
    video_input = fake.created(VIDEO_MODEL)[-1]["input"]
    assert video_input["prompt"] == "orbit"
    assert str(video_input["image"]).startswith(fake.base_url)

    picture = tmp_path / "mine.png"
    Image.new("RGB", (64, 64), "teal").save(picture)
    before = len(fake.requests)
    code, out, err = await _cli(env, "animate", str(picture), "--json")
    assert code == 0, err
    assert _calls(fake, before) == {f"create {VIDEO_MODEL}": 1}  # small: sent inline
    assert str(fake.created(VIDEO_MODEL)[-1]["input"]["image"]).startswith("data:image/png")
    assert json.loads(out)["cost_usd"] == pytest.approx(0.18)

    large = tmp_path / "large.png"
    Image.effect_noise((800, 800), 64).convert("RGB").save(large)  # noise: does not compress
    before = len(fake.requests)
    code, out, err = await _cli(env, "animate", str(large), "--json")
    assert code == 0, err
    assert _calls(fake, before) == {"upload": 1, f"create {VIDEO_MODEL}": 1}
