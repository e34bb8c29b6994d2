"""Chaos soak: campaigns killed, paused and stopped at random moments, then restarted properly.

From the issue "Exactly-once spending". Against the fake Replicate API (small
latencies, 10% injected faults: 429, 5xx and dropped connections on creates,
429/503 on prediction reads), N campaigns run one after another, each as
`python bot.py run ... --json` sharing one data folder and one SQLite file, like
a real deployment. Each gets one disruption at a random moment 0.2-3 s after
it submitted its campaign (the `estimated cost` line `run` prints just before;
timed from the process start if that line never comes), so the strike lands
while the campaign plans, makes images or makes videos:

- none: it runs to the end;
- kill: `kill -9` of its process group, then `bot.py resume` (with `--wait` when
  the CLI has it, else every 2 s for up to 30 s past the lease) until finished;
- stop: SIGSTOP for longer than the lease, `bot.py resume` while it is stopped,
  SIGCONT once the resumer has claimed it (both now run: only fencing keeps the
  old one from spending), then resume until finished (at most 1 campaign in 5);
- term: SIGTERM (a clean stop), then resume until finished.

A run killed before it stored its campaign is submitted again. At the end the
fake's record of creates and cancels is matched with every campaign's steps
(`bot.py show ID --json`) and the database is checked. It reports campaigns
completed, duplicate creates per step, cancels sent, lost outputs, DB
integrity, time taken and the disruptions; writes docs/CHAOS.md; exits 0 even
when a target is missed (it reports, it does not assert).

    python -m benchmarks.chaos [--campaigns 20] [--seed S] [--out docs/CHAOS.md] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DISRUPTIONS = ("none", "kill", "stop", "term")
LATENCY = "text=0.3,image=0.5,video=2.0"  # seconds per prediction in the fake
FAULT_RATE = 0.1  # chance of an injected fault per create and per prediction read
STOP_SHARE = 0.2  # at most this share of campaigns is SIGSTOPped (each costs ~12 s)
KILL_SHARE, TERM_SHARE = 0.4, 0.3  # of the campaigns that are not stopped
MOMENT_S = (0.2, 3.0)  # a disruption strikes this long after the run submitted its campaign
SUBMITTED = "estimated cost"  # what `run` prints on stderr just before it submits
SUBMIT_WAIT_S = 30.0  # longest wait for that line (start-up)
LEASE_MARGIN_S = 1.0  # SIGSTOP lasts the lease plus this, then the resumer starts
CLAIM_WAIT_S = 5.0  # how long the resumer may take to claim before SIGCONT anyway
RESUME_EVERY_S, RESUME_FOR_S = 2.0, 30.0  # retry resume this often, this long past the lease
RUN_TIMEOUT_S = 120.0  # longest a campaign's own run may take
CLI_TIMEOUT_S = 120.0  # longest any other CLI call may take
SETTLE_S = 2.5  # after the last run: in-flight predictions reach their end on the fake
TIME_TARGET_S = 600.0
DONE = frozenset({"succeeded", "partial", "failed", "canceled"})
CAMPAIGN_RE = re.compile(r"\bchaos (\d+)\b")
Json = dict[str, Any]


# --- pure parts (tests/test_chaos_units.py) -----------------------------------------


@dataclass(frozen=True)
class Disruption:
    """What happens to one campaign's run, and when (seconds after it started)."""

    kind: str  # one of DISRUPTIONS
    at_s: float


def plan_disruptions(
    n: int, rng: random.Random, stop_share: float = STOP_SHARE
) -> list[Disruption]:
    """A shuffled mix: at most `stop_share` stops, then ~40% kills, ~30% SIGTERMs, the rest none."""
    stops = int(n * stop_share)
    rest = n - stops
    kills = min(rest, math.ceil(rest * KILL_SHARE))
    terms = min(rest - kills, round(rest * TERM_SHARE))
    kinds = ["stop"] * stops + ["kill"] * kills + ["term"] * terms
    kinds += ["none"] * (n - len(kinds))
    rng.shuffle(kinds)
    return [Disruption(kind, round(rng.uniform(*MOMENT_S), 2)) for kind in kinds]


@dataclass(frozen=True)
class Prediction:
    """One prediction the fake made (from `/_fake/stats`)."""

    id: str
    model: str
    input_key: str
    status: str


def predictions_from(stats: Mapping[str, Any]) -> list[Prediction]:
    """The `predictions` of a `/_fake/stats` payload, oldest first."""
    return [
        Prediction(str(p["id"]), str(p["model"]), str(p["input_key"]), str(p["status"]))
        for p in stats.get("predictions") or []
    ]


def _inputs(input_key: str) -> Json:
    with contextlib.suppress(ValueError):
        inputs = json.loads(input_key)
        if isinstance(inputs, dict):
            return inputs
    return {}


def step_key(model: str, input_key: str) -> str:
    """Which step a prediction is for: its model, prompt and seed.

    Not the whole input: a video made twice from two copies of its image has
    two different `image` inputs but is still one step paid for twice.
    """
    inputs = _inputs(input_key)
    if not isinstance(inputs.get("prompt"), str):
        return json.dumps([model, input_key])
    return json.dumps([model, inputs["prompt"], inputs.get("seed")])


def campaign_number(input_key: str) -> int | None:
    """The soak's campaign number named in a prompt ('chaos 7'), if any."""
    found = CAMPAIGN_RE.search(str(_inputs(input_key).get("prompt") or input_key))
    return int(found[1]) if found else None


@dataclass(frozen=True)
class StepRef:
    """One step of a stored campaign (from `show ID --json`)."""

    campaign_id: str
    number: int  # the soak's campaign number
    product: int
    name: str  # image | video
    status: str
    provider_id: str | None
    output: str | None
    model: str | None


def steps_from(number: int, details: Mapping[str, Any]) -> list[StepRef]:
    """The steps of one `show ID --json` payload."""
    return [
        StepRef(
            campaign_id=str(details["id"]),
            number=number,
            product=int(product.get("index", 0)),
            name=str(step.get("name")),
            status=str(step.get("status")),
            provider_id=step.get("provider_id"),
            output=step.get("output"),
            model=step.get("model"),
        )
        for product in details.get("products") or []
        for step in product.get("steps") or []
    ]


@dataclass
class Group:
    """Every prediction made for one step (more than one: a duplicate create)."""

    key: str
    model: str
    kind: str  # plan | image | video (the step's name)
    number: int | None  # the soak's campaign number
    predictions: list[Prediction] = field(default_factory=list)
    steps: list[StepRef] = field(default_factory=list)  # steps that name one of them

    @property
    def duplicates(self) -> int:
        return len(self.predictions) - 1

    @property
    def product(self) -> int | None:
        return self.steps[0].product if self.steps else None


def group_predictions(predictions: Sequence[Prediction], steps: Sequence[StepRef]) -> list[Group]:
    """Predictions grouped by the step they are for, in order of first create."""
    by_id = {s.provider_id: s for s in steps if s.provider_id}
    kind_of_model = {s.model: s.name for s in steps if s.model}
    groups: dict[str, Group] = {}
    for p in predictions:
        key = step_key(p.model, p.input_key)
        group = groups.get(key)
        if group is None:
            kind = kind_of_model.get(p.model, "plan")
            group = groups[key] = Group(key, p.model, kind, campaign_number(p.input_key))
        group.predictions.append(p)
        step = by_id.get(p.id)
        if step is not None:
            group.kind = step.name
            if step not in group.steps:
                group.steps.append(step)
    return list(groups.values())


@dataclass(frozen=True)
class DuplicateRow:
    """Duplicate creates of one kind of step."""

    kind: str
    creates: int
    steps: int
    duplicates: int
    steps_with_duplicates: int


def duplicate_rows(groups: Sequence[Group]) -> list[DuplicateRow]:
    """Per kind of step (plan, image, video): creates, steps, extra creates."""
    rows = []
    for kind in ("plan", "image", "video", *sorted({g.kind for g in groups} - KIND_ORDER)):
        mine = [g for g in groups if g.kind == kind]
        rows.append(
            DuplicateRow(
                kind,
                creates=sum(len(g.predictions) for g in mine),
                steps=len(mine),
                duplicates=sum(g.duplicates for g in mine),
                steps_with_duplicates=sum(1 for g in mine if g.duplicates),
            )
        )
    return rows


KIND_ORDER = frozenset({"plan", "image", "video"})


@dataclass(frozen=True)
class Lost:
    """An output we paid for and do not have."""

    number: int | None
    campaign_id: str | None
    product: int | None
    kind: str
    reason: str


def lost_outputs(
    groups: Sequence[Group],
    steps: Sequence[StepRef],
    exists: Callable[[str], bool] = os.path.exists,
) -> list[Lost]:
    """Succeeded steps whose file is missing, and predictions that succeeded for nothing.

    A step counts once: a succeeded step with its file is fine however many
    predictions were made for it (those are duplicates, counted apart). The
    plan has no step of its own: its output is the products, so it is skipped.
    """
    lost = [
        Lost(s.number, s.campaign_id, s.product, s.name, f"output file missing: {s.output}")
        for s in steps
        if s.status == "succeeded" and (not s.output or not exists(s.output))
    ]
    for g in groups:
        paid = [p for p in g.predictions if p.status == "succeeded"]
        if g.kind == "plan" or not paid:
            continue
        if not g.steps:
            reason = f"prediction {paid[0].id} succeeded; no step refers to it"
            lost.append(Lost(g.number, None, None, g.kind, reason))
        elif not any(s.status == "succeeded" for s in g.steps):
            s = g.steps[0]
            reason = f"prediction {paid[0].id} succeeded; the step is {s.status}"
            lost.append(Lost(s.number, s.campaign_id, s.product, s.name, reason))
    return lost


@dataclass
class CampaignRun:
    """One campaign of the soak: what was done to it and how it ended."""

    number: int
    planned: Disruption
    happened: str = ""
    campaign_id: str | None = None
    status: str = "missing"
    resumes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    resubmitted: bool = False  # struck before its campaign was stored, so submitted again


@dataclass
class Findings:
    """Everything the report shows."""

    runs: list[CampaignRun]
    groups: list[Group]
    lost: list[Lost]
    cancels: list[str]
    integrity: list[str]  # problems found; empty: ok
    unfinished: list[str]  # campaign ids still pending or running at the end
    injected: Mapping[str, int]
    reads: int
    seconds: float
    cancel_owners: Mapping[str, int | None] = field(default_factory=dict)  # id -> campaign no.

    @property
    def completed(self) -> int:
        return sum(1 for r in self.runs if r.status == "succeeded")

    @property
    def duplicates(self) -> int:
        return sum(g.duplicates for g in self.groups)

    @property
    def creates(self) -> int:
        return sum(len(g.predictions) for g in self.groups)


@dataclass(frozen=True)
class Target:
    name: str
    value: str
    target: str
    met: bool


def targets(f: Findings) -> list[Target]:
    """The issue's targets and whether this soak met them."""
    n = len(f.runs)
    lost_files = sum(1 for x in f.lost if x.reason.startswith("output file missing"))
    return [
        Target(
            "campaigns completed (succeeded)",
            f"{f.completed} / {n}",
            f"{n} / {n}",
            f.completed == n,
        ),
        Target("duplicate creates", str(f.duplicates), "0", f.duplicates == 0),
        Target("cancels sent", str(len(f.cancels)), "0 (no user cancels)", not f.cancels),
        Target(
            "lost outputs",
            f"{len(f.lost)} ({lost_files} files missing, {len(f.lost) - lost_files} paid, unused)",
            "0",
            not f.lost,
        ),
        Target(
            "DB integrity",
            "ok" if not f.integrity else f"{len(f.integrity)} problem(s)",
            "integrity_check ok, no foreign key violations",
            not f.integrity,
        ),
        Target("campaigns left pending/running", str(len(f.unfinished)), "0", not f.unfinished),
        Target(
            "time taken",
            f"{f.seconds:.0f} s",
            f"< {TIME_TARGET_S:.0f} s",
            f.seconds < TIME_TARGET_S,
        ),
    ]


NUMBER_RE = re.compile(r"-?\d+(\.\d+)?|-")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table; columns of numbers right-aligned, the others left."""
    align = [
        "---:" if i and rows and all(NUMBER_RE.fullmatch(str(r[i])) for r in rows) else "---"
        for i in range(len(headers))
    ]
    lines = [headers, align, *rows]
    return "\n".join("| " + " | ".join(str(c) for c in line) + " |" for line in lines) + "\n"


def _per_campaign(f: Findings) -> dict[int | None, tuple[int, int, int]]:
    """Campaign number -> (duplicate creates, cancels, lost outputs)."""
    counts: dict[int | None, list[int]] = {}
    for g in f.groups:
        counts.setdefault(g.number, [0, 0, 0])[0] += g.duplicates
    for pid in f.cancels:
        counts.setdefault(f.cancel_owners.get(pid), [0, 0, 0])[1] += 1
    for x in f.lost:
        counts.setdefault(x.number, [0, 0, 0])[2] += 1
    return {k: (v[0], v[1], v[2]) for k, v in counts.items()}


def render_report(f: Findings, *, command: str, machine: str, date: str) -> str:
    """docs/CHAOS.md: header, targets, duplicates per step, disruptions, every campaign."""
    out = [
        "# Chaos soak\n",
        "Written by `benchmarks/chaos.py` (`make chaos`); overwritten on every run.\n",
        f"- Machine: {machine}",
        f"- Date: {date}",
        f"- Command: `{command}`",
        f"- Fake Replicate: latencies {LATENCY} s; {FAULT_RATE:.0%} injected faults "
        f"(creates: 429, 500, 502, 503, dropped before/after; prediction reads: 429, 503): "
        f"{f.injected.get('create', 0)} create and {f.injected.get('get', 0)} read faults "
        f"over {f.creates} creates and {f.reads} reads",
        "",
        "## Targets\n",
        markdown_table(
            ["measure", "value", "target", "met"],
            [(t.name, t.value, t.target, "yes" if t.met else "**no**") for t in targets(f)],
        ),
        "## Duplicate creates per step\n",
        "Predictions on the fake grouped by the step they are for (model, prompt, seed); "
        "every prediction past the first of a step is a duplicate create.\n",
        markdown_table(
            ["step", "creates", "steps", "duplicate creates", "steps with duplicates"],
            [
                (r.kind, r.creates, r.steps, r.duplicates, r.steps_with_duplicates)
                for r in duplicate_rows(f.groups)
            ],
        ),
    ]
    dup_groups = [g for g in f.groups if g.duplicates]
    if dup_groups:
        out.append(
            markdown_table(
                [
                    "campaign",
                    "product",
                    "step",
                    "creates",
                    "predictions on the fake (* the step's)",
                ],
                [
                    (
                        _campaign_label(g.number, g.steps[0].campaign_id if g.steps else None),
                        "-" if g.product is None else g.product + 1,
                        g.kind,
                        len(g.predictions),
                        ", ".join(_prediction_label(p, g.steps) for p in g.predictions),
                    )
                    for g in dup_groups
                ],
            )
        )
    if f.lost:
        out += [
            "## Lost outputs\n",
            markdown_table(
                ["campaign", "product", "step", "what"],
                [
                    (
                        _campaign_label(x.number, x.campaign_id),
                        "-" if x.product is None else x.product + 1,
                        x.kind,
                        x.reason,
                    )
                    for x in f.lost
                ],
            ),
        ]
    if f.integrity:
        out += ["## DB integrity problems\n", *[f"- {p}" for p in f.integrity], ""]
    out += ["## Disruptions\n", _disruption_table(f), "## Campaigns\n", _campaign_table(f)]
    return "\n".join(out)


def _prediction_label(p: Prediction, steps: Sequence[StepRef]) -> str:
    mine = "*" if any(s.provider_id == p.id for s in steps) else ""
    return f"`{p.id}`{mine} {p.status}"


def _campaign_label(number: int | None, campaign_id: str | None) -> str:
    label = "?" if number is None else f"#{number}"
    return f"{label} `{campaign_id}`" if campaign_id else label


def _disruption_table(f: Findings) -> str:
    per = _per_campaign(f)
    rows = []
    for kind in DISRUPTIONS:
        mine = [r for r in f.runs if r.planned.kind == kind]
        if not mine:
            continue
        struck = sum(1 for r in mine if not r.happened.startswith("none") and not r.resubmitted)
        counts = [per.get(r.number, (0, 0, 0)) for r in mine]
        rows.append(
            (
                kind,
                len(mine),
                struck if kind != "none" else "-",
                sum(1 for r in mine if r.status == "succeeded"),
                sum(c[0] for c in counts),
                sum(c[1] for c in counts),
                sum(c[2] for c in counts),
                sum(r.resumes for r in mine),
                f"{sum(r.seconds for r in mine) / len(mine):.1f}",
            )
        )
    return markdown_table(
        [
            "disruption",
            "campaigns",
            "struck a stored campaign",
            "succeeded",
            "duplicate creates",
            "cancels",
            "lost",
            "resume calls",
            "mean s",
        ],
        rows,
    )


def _campaign_table(f: Findings) -> str:
    per = _per_campaign(f)
    rows = []
    for r in f.runs:
        dup, cancels, lost = per.get(r.number, (0, 0, 0))
        rows.append(
            (
                f"#{r.number}",
                r.happened or r.planned.kind,
                f"`{r.campaign_id}`" if r.campaign_id else "-",
                r.status,
                r.resumes,
                dup,
                cancels,
                lost,
                f"{r.seconds:.1f}",
                "; ".join(r.notes) or "",
            )
        )
    return markdown_table(
        [
            "#",
            "disruption",
            "campaign",
            "status",
            "resumes",
            "dups",
            "cancels",
            "lost",
            "s",
            "notes",
        ],
        rows,
    )


# --- the soak ------------------------------------------------------------------------


def lease_s() -> float:
    """The service's lease (a campaign whose owner has not beaten for this long is an orphan)."""
    try:
        from dataclasses import fields

        from core.service import ServiceConfig

        value: object = next(f.default for f in fields(ServiceConfig) if f.name == "lease_s")
        return float(value) if isinstance(value, int | float) else 10.0
    except Exception:  # the service is being reworked: fall back to the documented 10 s
        return 10.0


def machine() -> str:
    return (
        f"{platform.node() or 'unknown host'}, {platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


def bot_env(base_url: str, data_dir: Path) -> dict[str, str]:
    """The operator's environment: nothing inherited that would steer the bot elsewhere."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGN_", "REPLICATE_", "RAY_"))
    }
    env.update(
        REPLICATE_API_TOKEN="x",
        REPLICATE_BASE_URL=base_url,
        REPLICATE_ALLOW_HTTP="1",
        REPLICATE_ALLOW_PRIVATE_OUTPUTS="1",  # the fake serves outputs on 127.0.0.1
        CAMPAIGN_GENERATOR="replicate",
        CAMPAIGN_EXECUTOR="local",
        CAMPAIGN_DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Child:
    """A process the soak started (in its own session), and where its output goes."""

    proc: subprocess.Popen[str]
    stem: Path  # <stem>.out and <stem>.err

    def output(self) -> str:
        return Path(f"{self.stem}.out").read_text(errors="replace")

    def signal_group(self, sig: signal.Signals) -> bool:
        """Signal its whole group, only while it is not reaped (so its id is still ours)."""
        if self.proc.poll() is not None:
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)
            return True
        return False

    def wait(self, timeout: float) -> int | None:
        """Its exit code, or None (it is then killed) if it took longer than `timeout`."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGCONT)
            self.signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            return None

    def ends_before(self, moment: float) -> bool:
        """Whether it exits before `moment` (time.monotonic()); waits until then at most."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=max(0.0, moment - time.monotonic()))
            return True
        return False


class Soak:
    """Runs the campaigns; every child is in its own session and tracked until reaped."""

    def __init__(self, workdir: Path, *, fault_rate: float, seed: int, log: Callable[[str], None]):
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.db = self.data_dir / "campaigns.db"
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.fault_rate = fault_rate
        self.seed = seed
        self.log = log
        self.lease_s = lease_s()
        self.children: list[Child] = []
        self.fake: Child | None = None
        self.base_url = ""
        self.env: dict[str, str] = {}
        self.resume_wait = False
        self.failure = ""  # the last CLI call that failed: "history exit 1: <last stderr line>"
        self._calls = 0

    # --- processes

    def spawn(self, args: Sequence[str], name: str, env: Mapping[str, str] | None = None) -> Child:
        """Start a child in its own session (so a group signal reaches its workers too)."""
        self._calls += 1
        stem = self.logs / f"{self._calls:04d}-{name}"
        with open(f"{stem}.out", "w") as out, open(f"{stem}.err", "w") as err:
            proc = subprocess.Popen(
                list(args),
                cwd=ROOT,
                env=dict(env if env is not None else self.env),
                stdout=out,
                stderr=err,
                text=True,
                start_new_session=True,
            )
        child = Child(proc, stem)
        self.children.append(child)
        return child

    def bot(self, *args: str, timeout: float = CLI_TIMEOUT_S) -> tuple[int | None, str]:
        """Run `bot.py ARGS` to the end (bounded); (exit code or None on timeout, stdout)."""
        child = self.spawn([sys.executable, "bot.py", *args], args[0])
        code = child.wait(timeout)
        if code != 0:
            self.failure = f"{args[0]} exit {code}{_last_line(child)}"
        return code, child.output()

    def cleanup(self) -> None:
        """Stop every child still running (only ours, by id), the fake last."""
        for child in [*self.children, *([self.fake] if self.fake else [])]:
            if child.proc.poll() is None:
                child.signal_group(signal.SIGCONT)
                child.signal_group(signal.SIGINT if child is self.fake else signal.SIGKILL)
                if child.wait(5) is None:
                    self.log(f"killed a child that would not stop: pid {child.proc.pid}")

    # --- the fake API

    def start_fake(self) -> None:
        args = [
            sys.executable, "-m", "tests.fakes.replicate", "--port", "0",
            "--latency", LATENCY, "--fault-rate", str(self.fault_rate), "--seed", str(self.seed),
        ]  # fmt: skip
        self.fake = self.spawn(args, "fake", env=os.environ)
        self.children.remove(self.fake)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (found := re.search(r"listening on (http://\S+)", self.fake.output())) is not None:
                self.base_url = found[1]
                self.env = bot_env(self.base_url, self.data_dir)
                return
            if self.fake.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"the fake Replicate API did not start: see {self.fake.stem}.err")

    def fake_stats(self) -> Json:
        with urllib.request.urlopen(f"{self.base_url}/_fake/stats", timeout=60) as reply:
            stats: Json = json.load(reply)
        return stats

    # --- the CLI

    def supports_resume_wait(self) -> bool:
        _code, out = self.bot("resume", "--help")
        return "--wait" in out

    def find(self, number: int) -> str | None:
        """The id of the campaign with this number's theme (newest first), if it was stored."""
        _code, out = self.bot("history", "--json", "--limit", "500")
        with contextlib.suppress(ValueError):
            for summary in json.loads(out):
                if summary.get("theme") == f"chaos {number}":
                    return str(summary["id"])
        return None

    def show(self, campaign_id: str) -> Json | None:
        _code, out = self.bot("show", campaign_id, "--json")
        with contextlib.suppress(ValueError):
            details = json.loads(out)
            if isinstance(details, dict):
                return details
        return None

    def status(self, campaign_id: str) -> str:
        details = self.show(campaign_id)
        return str(details.get("status")) if details else "missing"

    def owner(self, campaign_id: str) -> str | None:
        """The campaign's stored owner (read straight from SQLite; None if unknown)."""
        try:
            with contextlib.closing(sqlite3.connect(self.db, timeout=2)) as db:
                row = db.execute("SELECT owner FROM campaigns WHERE id = ?", (campaign_id,))
                found = row.fetchone()
        except sqlite3.Error:
            return None
        return None if found is None or found[0] is None else str(found[0])

    def resume(self, run: CampaignRun) -> None:
        run.resumes += 1
        args = ["resume", "--json", *(["--wait"] if self.resume_wait else [])]
        child = self.spawn([sys.executable, "bot.py", *args], "resume")
        code = child.wait(self.lease_s + CLI_TIMEOUT_S)
        if code not in (0, 1):
            run.notes.append(f"resume exit {code}{_last_line(child)}")

    def finish(self, run: CampaignRun) -> None:
        """The proper restart: `resume` until the campaign has ended (bounded)."""
        assert run.campaign_id is not None
        deadline = time.monotonic() + self.lease_s + RESUME_FOR_S
        while True:
            run.status = self.status(run.campaign_id)
            if run.status in DONE:
                return
            if time.monotonic() > deadline:
                run.notes.append(f"still {run.status} after {run.resumes} resume(s)")
                return
            self.resume(run)
            run.status = self.status(run.campaign_id)
            if run.status in DONE:
                return
            time.sleep(RESUME_EVERY_S)

    # --- one campaign

    def run_campaign(self, run: CampaignRun) -> None:
        started = time.monotonic()
        request = f'theme:"chaos {run.number}" products:3 videos:yes'
        child = self.spawn([sys.executable, "bot.py", "run", request, "--json"], "run")
        kind, at_s = run.planned.kind, run.planned.at_s
        if kind == "none" or child.ends_before(self._submitted(child, started) + at_s):
            run.happened = "none" if kind == "none" else f"none ({kind} planned at {at_s} s)"
            self._end(run, child, RUN_TIMEOUT_S)
        elif kind == "kill":
            child.signal_group(signal.SIGKILL)
            run.happened = f"kill -9 at {at_s} s"
            self._end(run, child, 10)
        elif kind == "term":
            child.proc.send_signal(signal.SIGTERM)
            run.happened = f"SIGTERM at {at_s} s"
            self._end(run, child, 30)
        else:
            self._stop(run, child)
        run.campaign_id = run.campaign_id or _id_from(child.output()) or self.find(run.number)
        if run.campaign_id is None:  # struck before it was stored: the user submits again
            run.resubmitted = True
            run.notes.append("not stored before the disruption: submitted again")
            again = self.spawn([sys.executable, "bot.py", "run", request, "--json"], "run")
            self._end(run, again, RUN_TIMEOUT_S)
            run.campaign_id = _id_from(again.output()) or self.find(run.number)
        if run.campaign_id is not None:
            self.finish(run)
        run.seconds = time.monotonic() - started

    @staticmethod
    def _submitted(child: Child, started: float) -> float:
        """When the run printed its estimate (it submits next), else when it started."""
        deadline = started + SUBMIT_WAIT_S
        err = Path(f"{child.stem}.err")
        while time.monotonic() < deadline and child.proc.poll() is None:
            with contextlib.suppress(OSError):
                if SUBMITTED in err.read_text(errors="replace"):
                    return time.monotonic()
            time.sleep(0.02)
        return started

    @staticmethod
    def _end(run: CampaignRun, child: Child, timeout: float) -> None:
        code = child.wait(timeout)
        if code is None:
            run.notes.append(f"run did not end within {timeout:.0f} s: killed")
        elif code not in (0, -signal.SIGKILL):
            run.notes.append(f"run exit {code}{_last_line(child)}")

    def _stop(self, run: CampaignRun, child: Child) -> None:
        """SIGSTOP past the lease, a resumer claims it, SIGCONT: two processes, one campaign."""
        stopped = time.monotonic()
        child.signal_group(signal.SIGSTOP)
        resume_at = stopped + self.lease_s + LEASE_MARGIN_S
        self.failure = ""
        while (found := self.find(run.number)) is None and time.monotonic() < resume_at - 2:
            time.sleep(1.0)  # e.g. "database is locked": the stopped process holds the lock
        run.campaign_id = found
        if found is None:
            run.notes.append(f"not found while stopped ({self.failure or 'not stored'})")
        elif self.failure:
            run.notes.append(f"while stopped: {self.failure}")
        before = self.owner(found) if found else None
        time.sleep(max(0.0, resume_at - time.monotonic()))
        resumer = self.spawn([sys.executable, "bot.py", "resume", "--json"], "resume")
        run.resumes += 1
        deadline = time.monotonic() + CLAIM_WAIT_S
        claimed = False
        while time.monotonic() < deadline and resumer.proc.poll() is None and run.campaign_id:
            owner = self.owner(run.campaign_id)
            if owner is not None and owner != before:
                claimed = True
                break
            time.sleep(0.1)
        child.signal_group(signal.SIGCONT)
        run.happened = f"SIGSTOP {time.monotonic() - stopped:.1f} s at {run.planned.at_s} s"
        if not claimed:
            run.notes.append("no resumer claimed it while it was stopped")
        self._end(run, child, RUN_TIMEOUT_S)
        code = resumer.wait(CLI_TIMEOUT_S)
        if code not in (0, 1):
            run.notes.append(f"resume exit {code}{_last_line(resumer)}")

    # --- the end

    def findings(self, runs: list[CampaignRun], seconds: float) -> Findings:
        time.sleep(SETTLE_S)
        stats = self.fake_stats()
        steps: list[StepRef] = []
        for run in runs:
            details = self.show(run.campaign_id) if run.campaign_id else None
            if details is not None:
                steps += steps_from(run.number, details)
        groups = group_predictions(predictions_from(stats), steps)
        owners = {p.id: g.number for g in groups for p in g.predictions}
        cancels = [str(c) for c in stats.get("cancels") or []]
        _code, out = self.bot("history", "--json", "--limit", "500")
        unfinished: list[str] = []
        with contextlib.suppress(ValueError):
            unfinished = [c["id"] for c in json.loads(out) if c.get("status") not in DONE]
        return Findings(
            runs=runs,
            groups=groups,
            lost=lost_outputs(groups, steps),
            cancels=cancels,
            integrity=db_integrity(self.db),
            unfinished=unfinished,
            injected=dict(stats.get("injected") or {}),
            reads=int(stats.get("reads") or 0),
            seconds=seconds,
            cancel_owners={c: owners.get(c) for c in cancels},
        )


def _last_line(child: Child, limit: int = 120) -> str:
    """': <the last line of its stderr>' (a traceback's exception), or nothing."""
    with contextlib.suppress(OSError):
        lines = Path(f"{child.stem}.err").read_text(errors="replace").strip().splitlines()
        if lines:
            line = lines[-1].strip().replace("|", "/")
            return f": {line[:limit]}{'...' if len(line) > limit else ''}"
    return ""


def _id_from(output: str) -> str | None:
    """The campaign id in `run --json` output, if it got that far."""
    with contextlib.suppress(ValueError):
        found = json.loads(output)
        if isinstance(found, dict) and isinstance(found.get("id"), str):
            return str(found["id"])
    return None


def db_integrity(db: Path) -> list[str]:
    """Problems `PRAGMA integrity_check` and `PRAGMA foreign_key_check` find (none: ok)."""
    if not db.exists():
        return [f"no database at {db}"]
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
            checks = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
            foreign = conn.execute("PRAGMA foreign_key_check").fetchall()
    except sqlite3.Error as exc:
        return [f"could not check: {exc}"]
    problems = [] if checks == ["ok"] else [f"integrity_check: {c}" for c in checks]
    return problems + [f"foreign_key_check: {tuple(row)}" for row in foreign]


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    if keep:
        yield Path(tempfile.mkdtemp(prefix="chaos-"))
        return
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        yield Path(tmp)


def soak(args: argparse.Namespace, log: Callable[[str], None]) -> Findings:
    plan = plan_disruptions(args.campaigns, random.Random(args.seed))
    if args.only:
        plan = [Disruption(args.only, d.at_s) for d in plan]
    runs = [CampaignRun(i + 1, d) for i, d in enumerate(plan)]
    with workspace(args.keep) as workdir:
        chaos = Soak(workdir, fault_rate=args.fault_rate, seed=args.seed, log=log)
        try:
            chaos.start_fake()
            chaos.resume_wait = chaos.supports_resume_wait()
            log(
                f"fake Replicate at {chaos.base_url}; data in {chaos.data_dir}; lease "
                f"{chaos.lease_s:g} s; resume {'--wait' if chaos.resume_wait else 'retried'}"
            )
            started = time.monotonic()
            for run in runs:
                chaos.run_campaign(run)
                notes = f" ({'; '.join(run.notes)})" if run.notes else ""
                log(
                    f"[{run.number}/{len(runs)}] {run.happened}: {run.campaign_id} {run.status}, "
                    f"{run.resumes} resume(s), {run.seconds:.1f} s{notes}"
                )
            seconds = time.monotonic() - started
            return chaos.findings(runs, seconds)
        finally:
            chaos.cleanup()
            if args.keep:
                log(f"kept {workdir} (logs/ has every process's stdout and stderr)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Chaos soak: exactly-once spending under crashes")
    parser.add_argument("--campaigns", type=int, default=20, help="how many campaigns (N)")
    parser.add_argument("--seed", type=int, default=None, help="disruptions and faults (random)")
    parser.add_argument("--out", default="docs/CHAOS.md", help="report file ('' = none)")
    parser.add_argument("--fault-rate", type=float, default=FAULT_RATE, help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="keep the data folder and logs")
    parser.add_argument("--only", choices=DISRUPTIONS, help="every campaign gets this disruption")
    args = parser.parse_args(argv)
    if args.campaigns < 1:
        parser.error("--campaigns must be at least 1")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    command = f"python -m benchmarks.chaos --campaigns {args.campaigns} --seed {args.seed}"
    if args.fault_rate != FAULT_RATE:
        command += f" --fault-rate {args.fault_rate}"
    if args.only:
        command += f" --only {args.only}"

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    log(f"chaos soak: {command}")
    findings = soak(args, log)
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = render_report(findings, command=command, machine=machine(), date=date)
    print(report)
    if args.out:
        out = Path(args.out) if Path(args.out).is_absolute() else ROOT / args.out
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
        log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
