"""Campaign state as data: statuses, plans, step and campaign records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from core.request import CampaignRequest


class StepKind(str, Enum):
    """Resource class a step uses; each kind has its own concurrency limit."""

    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    CPU = "cpu"


class StepName(str, Enum):
    """The steps of one product's chain, in order."""

    IMAGE = "image"
    VIDEO = "video"

    @property
    def kind(self) -> StepKind:
        """The concurrency kind this step counts against."""
        return StepKind(self.value)


class Action(str, Enum):
    """What made a product that is a new attempt of an earlier one."""

    REROLL = "reroll"  # the same plan again with a new seed
    ANIMATE = "animate"  # the same image, a new video


class StepStatus(str, Enum):
    """Lifecycle of one step."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    SKIPPED = "skipped"  # its input failed, so it never ran

    @property
    def done(self) -> bool:
        """True once the step will not change without a retry."""
        return self not in (StepStatus.PENDING, StepStatus.RUNNING)


class CampaignStatus(str, Enum):
    """Lifecycle and outcome of a campaign."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def done(self) -> bool:
        """True for the four outcomes."""
        return self not in (CampaignStatus.PENDING, CampaignStatus.RUNNING)


@dataclass(frozen=True)
class ProductPlan:
    """What one product is: the planner's output, the generator's input."""

    index: int
    name: str
    product_type: str
    tagline: str
    image_prompt: str
    video_prompt: str


@dataclass(frozen=True)
class StepRecord:
    """Everything known about one step of one product."""

    product_index: int
    name: StepName
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    provider_id: str | None = None
    output: str | None = None
    error: str | None = None
    cost_usd: float = 0.0
    worker: str | None = None
    model: str | None = None
    predict_time_s: float | None = None  # provider compute time, summed over attempts
    intent_at: float | None = None  # when a paid create was last about to be sent (epoch s)
    sent_input: str | None = None  # the input that create was about to send (JSON)
    output_url: str | None = None  # the provider URL of the output, kept for chaining

    def evolve(self, **changes: object) -> StepRecord:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Product:
    """A planned product and its steps."""

    plan: ProductPlan
    steps: tuple[StepRecord, ...]
    attempt_of: int | None = None  # the slot (original product index) this is an attempt of
    action: Action | None = None  # what made the attempt

    @property
    def slot(self) -> int:
        """The original product this one stands for: itself, or the one it re-attempts."""
        return self.plan.index if self.attempt_of is None else self.attempt_of

    @property
    def status(self) -> StepStatus:
        """Worst-first summary of the product's steps."""
        statuses = {s.status for s in self.steps}
        for status in (
            StepStatus.RUNNING,
            StepStatus.PENDING,
            StepStatus.FAILED,
            StepStatus.CANCELED,
        ):
            if status in statuses:
                return status
        return StepStatus.SUCCEEDED

    def step(self, name: StepName) -> StepRecord | None:
        """The step with this name, if the product has one."""
        return next((s for s in self.steps if s.name is name), None)

    def output(self, name: StepName) -> str | None:
        """Path of a step's output, if it succeeded."""
        step = self.step(name)
        return step.output if step and step.status is StepStatus.SUCCEEDED else None

    def error(self) -> str | None:
        """The first step error, for display."""
        return next((s.error for s in self.steps if s.error), None)


@dataclass(frozen=True)
class TerminalOrigin:
    """Asked for in the terminal (or anywhere else with no chat place to report back to)."""

    platform: Literal["terminal"] = field(default="terminal", init=False)

    @property
    def channel(self) -> str | None:
        """No channel: quotas count the requester only."""
        return None

    @property
    def guild(self) -> str | None:
        """No workspace or server."""
        return None

    def to_json(self) -> dict[str, str]:
        """What the store persists (`{}`, as stored before origins were typed)."""
        return {}


@dataclass(frozen=True)
class SlackOrigin:
    """A Slack channel, and the campaign's parent message once it is posted."""

    channel: str | None = None
    team: str | None = None  # the workspace
    ts: str | None = None  # the parent message
    platform: Literal["slack"] = field(default="slack", init=False)

    @property
    def guild(self) -> str | None:
        """The quota scope above the channel: the workspace."""
        return self.team

    def to_json(self) -> dict[str, str]:
        """What the store persists: the platform and the ids that are set."""
        return _json(self.platform, channel=self.channel, team=self.team, ts=self.ts)


@dataclass(frozen=True)
class DiscordOrigin:
    """A Discord server's channel, and the campaign's status message and thread in it."""

    guild: str | None = None
    channel: str | None = None
    message: str | None = None
    thread: str | None = None
    file_limit: str | None = None  # bytes a message may upload in that server
    platform: Literal["discord"] = field(default="discord", init=False)

    def to_json(self) -> dict[str, str]:
        """What the store persists: the platform and the ids that are set."""
        return _json(
            self.platform,
            guild=self.guild,
            channel=self.channel,
            message=self.message,
            thread=self.thread,
            file_limit=self.file_limit,
        )


Origin = SlackOrigin | DiscordOrigin | TerminalOrigin
"""Where a campaign was asked for, and where its status lives (ids opaque to the core)."""


def origin_from_json(data: Mapping[str, Any]) -> Origin:
    """The origin the store persisted (`to_json`), including rows stored as plain dicts."""
    ids = {k: str(v) for k, v in data.items() if k != "platform" and v is not None}
    platform = data.get("platform")
    if platform == "slack":
        return SlackOrigin(channel=ids.get("channel"), team=ids.get("team"), ts=ids.get("ts"))
    if platform == "discord":
        return DiscordOrigin(
            guild=ids.get("guild"),
            channel=ids.get("channel"),
            message=ids.get("message"),
            thread=ids.get("thread"),
            file_limit=ids.get("file_limit"),
        )
    return TerminalOrigin()


def _json(platform: str, **ids: str | None) -> dict[str, str]:
    return {"platform": platform} | {k: v for k, v in ids.items() if v is not None}


@dataclass(frozen=True)
class PlanCall:
    """One paid planning prediction (a part of the plan: "outline", "details/0-4", "plans"),
    stored like a step's: the intent before its create, then its id."""

    provider_id: str | None = None  # the prediction, once it exists
    intent_at: float | None = None  # when its create was about to be sent
    sent_input: str | None = None  # the input it was about to send (JSON)


@dataclass(frozen=True)
class Campaign:
    """A stored campaign with its products."""

    id: str
    request: CampaignRequest
    status: CampaignStatus
    created_at: float
    executor: str
    generator: str
    started_at: float | None = None
    finished_at: float | None = None
    contact_sheet: str | None = None
    error: str | None = None
    reel: str | None = None  # one MP4 of every current product's clip, once finished
    timeline: str | None = None  # the timeline image, once finished
    products: tuple[Product, ...] = field(default=())
    requester: str | None = None  # front-end user id, e.g. "slack:U123" or "discord:42"
    origin: Origin = field(default_factory=TerminalOrigin)  # where its status message lives
    plan_calls: Mapping[str, PlanCall] = field(default_factory=dict)  # by part: see PlanCall

    @property
    def platform(self) -> str:
        """Where it was asked for: slack, discord or terminal."""
        return self.origin.platform

    def product(self, index: int) -> Product:
        """The product with this index (products are stored as their plans arrive, so a
        campaign being planned may have some of them; KeyError if it has no such one)."""
        for product in self.products:
            if product.plan.index == index:
                return product
        raise KeyError(index)

    @property
    def cost_usd(self) -> float:
        """Sum of the recorded step costs."""
        return round(sum(s.cost_usd for p in self.products for s in p.steps), 6)

    @property
    def elapsed_s(self) -> float | None:
        """Wall time from start to finish, if both are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        return round(self.finished_at - self.started_at, 3)

    def steps(self) -> Iterable[StepRecord]:
        """Every step of every product."""
        return (s for p in self.products for s in p.steps)

    def current(self) -> tuple[Product, ...]:
        """One product per slot, in slot order: what the campaign stands on now.

        A slot's current product is its latest attempt that succeeded, else its
        latest attempt: a reroll that fails leaves the earlier image in place.
        """
        by_slot: dict[int, list[Product]] = {}
        for product in self.products:
            by_slot.setdefault(product.slot, []).append(product)
        picked = []
        for slot in sorted(by_slot):
            attempts = by_slot[slot]
            good = [p for p in attempts if p.status is StepStatus.SUCCEEDED]
            picked.append((good or attempts)[-1])
        return tuple(picked)

    def attempts(self, slot: int) -> tuple[Product, ...]:
        """Every product of one slot, the original first."""
        return tuple(p for p in self.products if p.slot == slot)


def outcome(steps: Iterable[StepRecord], canceled: bool) -> CampaignStatus:
    """Campaign outcome from its finished steps."""
    statuses = [s.status for s in steps]
    if canceled:
        return CampaignStatus.CANCELED
    if statuses and all(s is StepStatus.SUCCEEDED for s in statuses):
        return CampaignStatus.SUCCEEDED
    if any(s is StepStatus.SUCCEEDED for s in statuses):
        return CampaignStatus.PARTIAL
    if statuses and all(s is StepStatus.CANCELED for s in statuses):
        return CampaignStatus.CANCELED
    return CampaignStatus.FAILED


@dataclass(frozen=True)
class Lease:
    """Who runs an unfinished campaign, and when it last said so."""

    campaign_id: str
    owner: str | None  # "host:pid:tag"; None when nobody has it (new or released)
    heartbeat_at: float | None  # epoch seconds; 0 once released by a handing-over process
    created_at: float
