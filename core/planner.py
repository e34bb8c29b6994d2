"""Planners turn a campaign request into N distinct product plans.

`OfflinePlanner` uses templates and a seeded RNG: the same (theme, style,
seed) always gives the same plans. The LLM planner (adapters/replicate_api)
plugs in through the `Planner` port in core/ports.py.
"""

from __future__ import annotations

import hashlib
import random

from core.model import ProductPlan
from core.ports import OnPlan, PlanContext, Plans
from core.request import CampaignRequest, Style

PRODUCT_TYPES = (
    "t-shirt",
    "mug",
    "poster",
    "tote bag",
    "phone case",
    "hoodie",
    "sticker pack",
    "cap",
    "notebook",
    "socks",
    "enamel pin",
    "water bottle",
    "throw pillow",
    "tapestry",
    "keychain",
    "puzzle",
    "calendar",
    "apron",
    "bandana",
    "mouse pad",
)
ADJECTIVES = (
    "Classic",
    "Cosmic",
    "Golden",
    "Midnight",
    "Sunny",
    "Electric",
    "Cozy",
    "Wild",
    "Dreamy",
    "Bold",
    "Lucky",
    "Velvet",
    "Mellow",
    "Radiant",
    "Urban",
    "Secret",
)
TAGLINES = (
    "Wear your {theme} pride.",
    "{theme}, every single day.",
    "Made for fans of {theme}.",
    "Because {theme} never goes out of style.",
    "A little {theme} goes a long way.",
    "Bring {theme} home.",
    "Small {thing}, big {theme} energy.",
    "Your daily dose of {theme}.",
)
STYLE_LOOKS = {
    Style.PHOTO: "studio product photograph, soft light, sharp focus",
    Style.MINIMAL: "minimalist flat design, clean lines, lots of white space",
    Style.VINTAGE: "vintage retro print, faded colors, halftone texture",
    Style.NEON: "neon glow, dark background, synthwave colors",
    Style.WATERCOLOR: "hand-painted watercolor illustration, soft washes",
}
CAMERA_MOVES = (
    "slow push-in",
    "gentle orbit",
    "slow pan left to right",
    "slow tilt up",
    "soft zoom out",
)


def base_seed(request: CampaignRequest) -> int:
    """The request's seed, or a stable one derived from theme and style."""
    if request.seed is not None:
        return request.seed
    digest = hashlib.sha256(f"{request.theme}|{request.style.value}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


class OfflinePlanner:
    """Template planner: no network, deterministic per (theme, style, seed)."""

    name = "offline"

    async def plan(
        self,
        request: CampaignRequest,
        ctx: PlanContext | None = None,
        on_plan: OnPlan | None = None,
    ) -> Plans:
        """Exactly request.products distinct plans (free: `ctx` is not needed), all at once."""
        plans = plan_offline(request)
        done = {p.index for p in ctx.done} if ctx else set()
        for plan in plans:
            if on_plan is not None and plan.index not in done:
                await on_plan(plan)
        return plans


def plan_offline(request: CampaignRequest) -> Plans:
    """Deterministic plans for a request, with no note (nothing fell back)."""
    rng = random.Random(base_seed(request))
    types = list(PRODUCT_TYPES)
    rng.shuffle(types)
    adjectives = list(ADJECTIVES)
    rng.shuffle(adjectives)
    plans: list[ProductPlan] = []
    names: set[str] = set()
    for i in range(request.products):
        thing = types[i % len(types)]
        name = _unique(
            f"{adjectives[i % len(adjectives)]} {_title(request.theme)} {thing.title()}", names
        )
        plans.append(_plan(request, rng, i, name, thing))
    return Plans(plans)


def _plan(
    request: CampaignRequest, rng: random.Random, index: int, name: str, thing: str
) -> ProductPlan:
    theme = request.theme
    audience = f", aimed at {request.audience}" if request.audience else ""
    tagline = rng.choice(TAGLINES).format(theme=theme, thing=thing)
    look = STYLE_LOOKS[request.style]
    return ProductPlan(
        index=index,
        name=name,
        product_type=thing,
        tagline=tagline,
        image_prompt=f'{look}: a {thing} featuring {theme}{audience}, with the words "{name}"',
        video_prompt=f"{rng.choice(CAMERA_MOVES)} around the {thing} featuring {theme}, {look}",
    )


def _title(theme: str, max_words: int = 3) -> str:
    words = theme.split()
    short = " ".join(words[:max_words])
    return short[:40].title()


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name} {n}", n + 1
    taken.add(candidate)
    return candidate
