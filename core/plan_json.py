"""The LLM planner's prompt and the parser for its answer (pure, stdlib only).

Language models wrap JSON in prose and code fences, add trailing remarks, or
return something else entirely. `parse_plans` finds the first JSON array (or
an object with a "products" array) anywhere in the text, then validates every
field of every plan; anything unusable raises `PlanFormatError` with a short
reason, so the planner can ask again or fall back.
"""

from __future__ import annotations

import json
import re
from typing import Any

from core.model import ProductPlan
from core.planner import STYLE_LOOKS
from core.request import CampaignRequest

FIELDS = {  # name -> longest accepted value
    "name": 80,
    "product_type": 40,
    "tagline": 200,
    "image_prompt": 1000,
    "video_prompt": 1000,
}
_FENCE_RE = re.compile(r"```[a-zA-Z]*\s*(.*?)```", re.DOTALL)


class PlanFormatError(ValueError):
    """The model's answer is not N valid product plans."""


def plan_prompt(request: CampaignRequest, *, strict: bool = False) -> str:
    """The instruction that asks a language model for request.products plans as JSON."""
    audience = f" The audience is {request.audience}." if request.audience else ""
    lines = [
        f"Plan exactly {request.products} different merchandise products for the theme "
        f'"{request.theme}".{audience}',
        f"Visual style of every product image: {STYLE_LOOKS[request.style]}.",
        "Answer with a JSON array of objects with these string fields: "
        + ", ".join(FIELDS)
        + ". product_type is one or two words (e.g. mug, hoodie); image_prompt describes "
        "one product photo; video_prompt describes a short camera move around it.",
        "Every name must be different.",
    ]
    if strict:
        lines.append(
            "Your previous answer was not valid. Output only the JSON array, nothing else."
        )
    return "\n".join(lines)


def parse_plans(text: str, count: int) -> list[ProductPlan]:
    """Exactly `count` validated plans from a model's answer; raises PlanFormatError."""
    items = _find_list(text)
    if len(items) < count:
        raise PlanFormatError(f"{len(items)} plans instead of {count}")
    plans = [_plan(index, item) for index, item in enumerate(items[:count])]
    names = [p.name.casefold() for p in plans]
    if len(set(names)) != len(names):
        raise PlanFormatError("two plans have the same name")
    return plans


def _find_list(text: str) -> list[Any]:
    """The first JSON array of plans in the text (inside a code fence, if any)."""
    if not isinstance(text, str) or not text.strip():
        raise PlanFormatError("the answer is empty")
    chunks = [m.group(1) for m in _FENCE_RE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for chunk in chunks:
        for start in (i for i, ch in enumerate(chunk) if ch in "[{"):
            try:
                value, _ = decoder.raw_decode(chunk, start)
            except ValueError:
                continue
            if isinstance(value, dict):
                value = value.get("products")
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                return value
    raise PlanFormatError("no JSON list of products in the answer")


def _plan(index: int, item: dict[str, Any]) -> ProductPlan:
    values: dict[str, str] = {}
    for field, limit in FIELDS.items():
        raw = item.get(field)
        if not isinstance(raw, str) or not raw.strip():
            raise PlanFormatError(f"plan {index + 1}: {field} is missing or not text")
        value = " ".join(raw.split())
        if len(value) > limit:
            raise PlanFormatError(f"plan {index + 1}: {field} is longer than {limit} characters")
        values[field] = value
    return ProductPlan(index=index, **values)
