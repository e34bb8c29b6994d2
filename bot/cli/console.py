"""Terminal front end: live progress, result tables and JSON summaries (rich).

Every text that a user or a model wrote (themes, product names, notes, errors,
paths) is shown through `inert()`: a rich `Text`, so `[/y]` is never markup,
with control characters (ESC, NUL, bidi overrides, ...) shown as `\\x1b`-style
escapes instead of reaching the terminal.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from bot.chat.text import duration, live_notes
from core.model import Campaign, StepName, StepStatus
from core.progress import CampaignSnapshot, StepView

STATUS_STYLE = {
    "pending": "dim",
    "running": "yellow",
    "succeeded": "green",
    "partial": "yellow",
    "failed": "red",
    "canceled": "magenta",
    "skipped": "dim",
}
STEP_ICON = {
    StepStatus.PENDING: "·",
    StepStatus.RUNNING: "…",
    StepStatus.SUCCEEDED: "✓",
    StepStatus.FAILED: "✗",
    StepStatus.CANCELED: "⊘",
    StepStatus.SKIPPED: "-",
}


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape_control(match: re.Match[str]) -> str:
    char = match.group()
    if char in "\t\n\r":
        return " "
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def inert(text: object, style: str = "") -> Text:
    """User or model text as a literal rich Text: no markup, no control characters."""
    return Text(_CONTROL.sub(_escape_control, "" if text is None else str(text)), style=style)


class LiveProgress:
    """A rich Live view of one campaign, fed snapshots by a CoalescingSink."""

    def __init__(self, console: Console, executor: str) -> None:
        self._console = console
        self._executor = executor
        self._snapshot: CampaignSnapshot | None = None
        self._live = Live(
            console=console, refresh_per_second=4, transient=False, get_renderable=self._render
        )

    def __enter__(self) -> LiveProgress:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    async def deliver(self, snapshot: CampaignSnapshot) -> None:
        """Show this snapshot from now on."""
        self._snapshot = snapshot
        self._live.refresh()

    def _render(self) -> RenderableType:
        snap = self._snapshot
        if snap is None:
            return Text("planning…", style="dim")
        return Group(_header(snap, self._executor), _product_rows(snap))


def _header(snap: CampaignSnapshot, executor: str) -> RenderableType:
    done, total = snap.counts()
    elapsed, left = snap.timing(time.time())
    eta = "" if left is None else f"  ETA {duration(left)}"
    line = Text.assemble(
        inert(f"Campaign {snap.campaign_id} ", "bold"),
        inert(f"“{snap.theme}” ", "italic"),
        inert(snap.status.value, STATUS_STYLE.get(snap.status.value, "")),
        inert(f"  {done}/{total} steps  {elapsed:.1f}s{eta}  [{executor}]"),
    )
    bar = Table.grid()
    bar.add_row(ProgressBar(total=max(total, 1), completed=done, width=60))
    if snap.notice:
        return Group(line, inert(snap.notice, "yellow"), bar)
    return Group(line, bar)


def _product_rows(snap: CampaignSnapshot) -> Table:
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    for column in ("#", "product", "image", "video", "note"):
        table.add_column(
            column, overflow="ellipsis", no_wrap=True, max_width=60 if column == "note" else None
        )
    for p in snap.products:
        # running steps' words first (Replicate's percentage), then a waiting one's place in line
        live = " · ".join(live_notes(p))
        note = live or next((s.message for s in p.steps.values() if s.message), "")
        table.add_row(
            str(p.index + 1),
            inert(p.name),
            _cell(p.steps.get(StepName.IMAGE)),
            _cell(p.steps.get(StepName.VIDEO)),
            inert(note),
        )
    return table


def _cell(step: StepView | None) -> Text:
    if step is None:
        return Text("")
    seconds = ""
    if step.started_at and step.finished_at:
        seconds = f" {step.finished_at - step.started_at:.1f}s"
    return Text(
        f"{STEP_ICON[step.status]} {step.status.value}{seconds}",
        style=STATUS_STYLE.get(step.status.value, ""),
    )


def files_table(campaign: Campaign) -> Table:
    """Final table: one row per product with its files (names within the folder) or error."""
    outputs = [s.output for s in campaign.steps() if s.output]
    folder = os.path.commonpath(outputs) if len(outputs) > 1 else None
    table = Table(title=inert(f"Campaign {campaign.id}: {campaign.status.value}"))
    for column in ("#", "product", "status", "image", "video / error"):
        table.add_column(column, overflow="fold")
    for p in campaign.products:
        video = _short(p.output(StepName.VIDEO), folder) or p.error() or ""
        table.add_row(
            str(p.plan.index + 1),
            inert(p.plan.name + (f" ({p.action.value} of {p.slot + 1})" if p.action else "")),
            inert(p.status.value, STATUS_STYLE.get(p.status.value, "")),
            inert(_short(p.output(StepName.IMAGE), folder)),
            inert(video),
        )
    notes = [f"files in {folder}"] if folder else []
    if campaign.contact_sheet:
        notes.append(f"contact sheet: {campaign.contact_sheet}")
    if campaign.timeline:
        notes.append(f"timeline: {campaign.timeline}")
    if campaign.reel:
        notes.append(f"reel: {campaign.reel}")
    if campaign.error:
        notes.append(f"error: {campaign.error}")
    table.caption = Text("\n").join(inert(n) for n in notes) if notes else None
    return table


def _short(path: str | None, folder: str | None) -> str | None:
    return os.path.relpath(path, folder) if path and folder else path


def history_table(campaigns: list[Campaign]) -> Table:
    """One row per campaign, newest first."""
    table = Table(title="Campaigns")
    for column in ("id", "created", "status", "products", "videos", "cost", "theme"):
        table.add_column(column, overflow="ellipsis")
    for c in campaigns:
        table.add_row(
            inert(c.id),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(c.created_at)),
            inert(c.status.value, STATUS_STYLE.get(c.status.value, "")),
            str(c.request.products),
            "yes" if c.request.videos else "no",
            f"${c.cost_usd:.3f}",
            inert(c.request.theme),
        )
    return table


def summary(campaign: Campaign) -> dict[str, Any]:
    """The JSON summary of `run --json`, `retry --json`, `animate --json` and `history --json`."""
    current = campaign.current()
    return {
        "id": campaign.id,
        "status": campaign.status.value,
        "theme": campaign.request.theme,
        "executor": campaign.executor,
        "generator": campaign.generator,
        "elapsed_s": campaign.elapsed_s,
        "cost_usd": campaign.cost_usd,
        "contact_sheet": campaign.contact_sheet,
        "timeline": campaign.timeline,
        "reel": campaign.reel,
        "error": campaign.error,
        "products": [
            {
                "index": p.plan.index,
                "name": p.plan.name,
                "status": p.status.value,
                "attempt_of": p.attempt_of,
                "action": p.action.value if p.action else None,
                "current": p in current,
                "image": p.output(StepName.IMAGE),
                "video": p.output(StepName.VIDEO),
                "error": p.error(),
            }
            for p in campaign.products
        ],
    }


def details(campaign: Campaign) -> dict[str, Any]:
    """`show --json`: the summary plus the request, plans and every step."""
    data = summary(campaign)
    data["request"] = campaign.request.to_dict()
    data["created_at"] = campaign.created_at
    data["started_at"] = campaign.started_at
    data["finished_at"] = campaign.finished_at
    for entry, p in zip(data["products"], campaign.products, strict=True):
        entry.update(
            product_type=p.plan.product_type,
            tagline=p.plan.tagline,
            image_prompt=p.plan.image_prompt,
            video_prompt=p.plan.video_prompt,
        )
        entry["steps"] = [
            {
                "name": s.name.value,
                "status": s.status.value,
                "attempts": s.attempts,
                "started_at": s.started_at,
                "finished_at": s.finished_at,
                "provider_id": s.provider_id,
                "output": s.output,
                "error": s.error,
                "cost_usd": s.cost_usd,
                "worker": s.worker,
                "model": s.model,
                "predict_time_s": s.predict_time_s,
            }
            for s in p.steps
        ]
    return data
