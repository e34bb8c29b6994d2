"""A fake Replicate HTTP API (aiohttp on 127.0.0.1) for tests, benchmarks and trying the bot.

It speaks enough of the real API for the `replicate` client: official-model and
version creates, get, list (paginated), cancel, file upload, the model and
version objects with their published input schemas (tests/fakes/model_schemas.py),
and serves the output files itself. Like the real API it checks every create
against the model's input schema (422 with `invalid_fields`), answers 404 to an
official-endpoint create of a community or unknown model, and ignores inputs a
model does not declare (recorded in `ignored_inputs`). Predictions advance with
time: `starting`, `processing`, then the outcome once the model's latency has
passed (computed when polled, so the fake runs no background tasks). It records
every request, and tests inject trouble: create faults (429 with or without
Retry-After, 5xx, a connection dropped or an answer withheld until the client
times out, before or after the prediction is made), a gate that holds creates,
create and read rate limits (a burst in seconds' worth or as a count), and
per-prompt outcomes (fail with a message, aborted, empty output, hang).
Like the real API it honours `Prefer: wait=N` on creates (the answer is held
until the prediction finishes or N seconds pass) and, for a create that names
a `webhook`, POSTs the finished prediction there, signed like Replicate
(webhook-id, webhook-timestamp, webhook-signature) with `webhook_secret`.

Run it alone:  python -m tests.fakes.replicate --port 8765 --profile bench
then:  REPLICATE_API_TOKEN=x REPLICATE_BASE_URL=http://127.0.0.1:8765 \\
       REPLICATE_ALLOW_HTTP=1 REPLICATE_ALLOW_PRIVATE_OUTPUTS=1 \\
       python bot.py run "retro cats products:4 videos:yes"
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import random
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.fakes import model_schemas
from tests.fakes.model_schemas import Components
from tests.fakes.replicate_models import ServedModels
from tests.fakes.replicate_parts import (
    PROFILES,
    STUB_MP4,
    Fault,
    check_inputs,
    error_reply,
    fault_reply,
    invalid_reply,
    make_limit,
    model_json,
    now_iso,
    playable_mp4,
    png,
    render_prompt,
    signed_webhook,
    throttled_reply,
)
from tests.fakes.replicate_text import TextTiming, default_reply, sse_answer

__all__ = [
    "PROFILES",
    "STUB_MP4",
    "TOKEN",
    "FakeReplicate",
    "Fault",
    "TextTiming",
    "default_reply",
    "fast_settings",
]
MADE_FIRST = frozenset({"drop_after", "stall_after"})  # faults that strike after the create
RANDOM_FAULTS = ("429", "500", "502", "503", "drop_before", "drop_after")  # --fault-rate, creates
RANDOM_GET_FAULTS = (429, 503)  # --fault-rate, prediction reads
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
WAIT_RE = re.compile(r"\bwait(?:=(\d+))?")
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"fake-webhook-signing-key-0123456").decode()


class FakeReplicate(ServedModels):
    """The fake API; `await start()` then point REPLICATE_BASE_URL at `base_url`.

    The models it serves (`add_model`, `new_version`, `latest`, ...) are `ServedModels`'.
    """

    def __init__(
        self,
        *,
        latency: dict[str, float] | None = None,
        token: str | None = None,
        create_rate_per_min: float | None = None,
        read_rate_per_min: float | None = None,
        burst_s: float = 2.0,
        create_burst: int | None = None,
        page_size: int = 50,
        webhook_secret: str = WEBHOOK_SECRET,
        fault_rate: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.latency = dict(PROFILES["fast"], **(latency or {}))
        self.token = token
        self.page_size = page_size
        self.faults: deque[Fault] = deque()
        self.get_faults: deque[int] = deque()  # statuses answered to the next polls
        self.fault_rate = fault_rate  # chance of a random fault per create and per read
        self._random = random.Random(seed)
        self.injected: dict[str, int] = {"create": 0, "get": 0}  # random faults so far
        self.script: dict[str, str] = {}  # prompt substring -> fail:<msg>|aborted|empty|hang
        self.ignored_inputs: list[tuple[str, str]] = []  # (model, undeclared input) received
        self.data_outputs = False  # `Prefer: wait` creates of images answer data: URLs
        self.model_alias: dict[str, str] = {}  # asked-for model -> the `model` answered
        self.text_reply: Callable[[str], str] = default_reply
        # None: a text prediction takes its kind's latency; else it grows with its answer
        self.text_timing: TextTiming | None = None
        self._answers: dict[str, str] = {}  # a text prediction's answer, written at its create
        self.streams: list[str] = []  # ids of the predictions whose stream was read
        self.stream_status: int | None = None  # if set, streams answer this error status
        self.create_gate: asyncio.Event | None = None  # if given, creates wait until it is set
        self.at_gate = asyncio.Event()  # set once a create waits at the gate
        self._released = asyncio.Event()  # set by stop(): withheld answers give up
        self.serve_type: str | None = None  # force the Content-Type of served files
        self.video = playable_mp4()  # every video's output; STUB_MP4: none plays (no reel)
        self.predictions: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.file_headers: list[dict[str, str]] = []
        self.create_times: list[float] = []
        self.cancels: list[str] = []
        self.uploads: dict[str, bytes] = {}
        self.throttled = 0
        self.reads_throttled = 0
        self.read_times: list[float] = []
        self.webhook_secret = webhook_secret
        self.webhooks_sent: list[tuple[str, str]] = []  # (prediction id, status)
        self.webhook_fault: int | None = None  # if set, webhooks are never sent (lost)
        self._tasks: set[asyncio.Task[None]] = set()
        self._born: dict[str, float] = {}
        self._born_wall: dict[str, float] = {}
        self._limit = make_limit(create_rate_per_min, burst_s, create_burst)
        self._read_limit = make_limit(read_rate_per_min, burst_s, None)
        self._asked: dict[str, tuple[str, Components]] = {}  # id -> (model asked, its schema)
        self._data_urls: set[str] = set()  # predictions whose images come back as data: URLs
        self._png = png()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        super().__init__()

    async def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (port 0: any free port); returns the base URL."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/models/{owner}/{name}/predictions", self._create_official)
        app.router.add_post("/v1/predictions", self._create_version)
        app.router.add_get("/v1/predictions", self._list)
        app.router.add_get("/v1/predictions/{id}", self._get)
        app.router.add_post("/v1/predictions/{id}/cancel", self._cancel)
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{id}", self._file_info)
        app.router.add_get("/v1/models/{owner}/{name}", self._model)
        app.router.add_get("/v1/models/{owner}/{name}/versions/{version}", self._version)
        app.router.add_get("/files/{name}", self._serve)
        app.router.add_get("/stream/{id}", self._stream)
        app.router.add_get("/v1/webhooks/default/secret", self._secret)
        app.router.add_get("/_fake/stats", self._stats)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.base_url

    async def stop(self) -> None:
        """Stop listening."""
        self._released.set()
        if self.create_gate is not None:
            self.create_gate.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    # --- what tests look at -------------------------------------------------

    def created(self, model: str | None = None) -> list[dict[str, Any]]:
        """Predictions made so far (of one model, if given), oldest first."""
        return [p for p in self.predictions.values() if model in (None, p["model"])]

    def made(self, kind: str) -> list[dict[str, Any]]:
        """Predictions made so far of one kind (text, image or video), oldest first."""
        return [p for p in self.predictions.values() if self._kind(p) == kind]

    def repeated(self) -> list[str]:
        """Inputs created more than once (a step or a plan paid twice)."""
        inputs = [json.dumps(p["input"], sort_keys=True) for p in self.predictions.values()]
        return sorted({i for i in inputs if inputs.count(i) > 1})

    def posts(self, path_part: str) -> int:
        """How many POST requests had this in their path."""
        return sum(1 for m, p, _ in self.requests if m == "POST" and path_part in p)

    # --- handlers -------------------------------------------------------------

    def _record(self, request: web.Request) -> web.Response | None:
        self.requests.append((request.method, request.path_qs, dict(request.headers)))
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return error_reply(401, "Invalid API token")
        if request.method == "GET":
            self.read_times.append(time.monotonic())
            if self._read_limit is not None and not self._read_limit.take():
                self.reads_throttled += 1
                return throttled_reply(self._read_limit)
        return None

    async def _create_official(self, request: web.Request) -> web.StreamResponse:
        return await self._create(request, official=True)

    async def _create_version(self, request: web.Request) -> web.StreamResponse:
        return await self._create(request, official=False)

    def _target(self, request: web.Request, body: Any, official: bool) -> tuple[str, str] | None:
        """(model, version) a create runs, or None if there is no such model or version."""
        if official:
            model = f"{request.match_info['owner']}/{request.match_info['name']}"
            known = model in self.latest and model not in self.community
            return (model, "hidden") if known else None
        version = str(body.get("version", ""))
        known = version in self.versions and self.schema_of(version) is not None
        return (self.versions[version], version) if known else None

    async def _create(self, request: web.Request, official: bool) -> web.StreamResponse:
        if (denied := self._record(request)) is not None:
            return denied
        body = await request.json()
        if self.create_gate is not None:
            self.at_gate.set()
            await self.create_gate.wait()
        if self._limit is not None and not self._limit.take():
            self.throttled += 1
            return throttled_reply(self._limit)
        fault = self.faults.popleft() if self.faults else self._random_fault()
        if fault is not None and fault.kind == "stall_before":
            return await self._withhold(request)
        if fault is not None and fault.kind not in MADE_FIRST:
            return fault_reply(request, fault)
        if (target := self._target(request, body, official)) is None:
            if official:
                return error_reply(404, "The requested resource could not be found.")
            return error_reply(422, "Invalid version or not permitted")
        if not isinstance(body.get("input"), dict):
            return error_reply(422, "input is required")
        model, version = target
        components = self.schema_of(self.latest[model] if official else version) or {}
        refused, ignored = check_inputs(components, body["input"])
        if refused:
            return invalid_reply(refused)
        self.ignored_inputs += [(model, name) for name in ignored]
        prediction = self._new(model, version, body["input"], components)
        if isinstance(body.get("webhook"), str):
            self._spawn(self._send_webhook(prediction, body["webhook"]))
        if fault is not None and fault.kind == "stall_after":
            return await self._withhold(request)
        if fault is not None:  # drop_after: made it, but the answer never arrives
            request.transport.close()  # type: ignore[union-attr]
            return web.Response()
        if (wait := WAIT_RE.search(request.headers.get("Prefer", ""))) is not None:
            if self.data_outputs:
                self._data_urls.add(prediction["id"])
            await self._hold(prediction, float(wait[1] or 60))
        return web.json_response(self._view(prediction), status=201)

    def _random_fault(self) -> Fault | None:
        """With probability `fault_rate`, one of the create faults (the queue comes first)."""
        if self.fault_rate <= 0 or self._random.random() >= self.fault_rate:
            return None
        self.injected["create"] += 1
        return Fault(self._random.choice(RANDOM_FAULTS))

    def _random_get_fault(self) -> web.Response | None:
        """With probability `fault_rate`, a 429 or 503 for a prediction read."""
        if self.fault_rate <= 0 or self._random.random() >= self.fault_rate:
            return None
        self.injected["get"] += 1
        return error_reply(self._random.choice(RANDOM_GET_FAULTS), "injected")

    async def _hold(self, prediction: dict[str, Any], wait_s: float) -> None:
        """`Prefer: wait`: answer once the prediction has finished or `wait_s` has passed."""
        deadline = time.monotonic() + wait_s
        while self._view(prediction)["status"] not in TERMINAL:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, max(0.001, self._left(prediction))))

    def _left(self, prediction: dict[str, Any]) -> float:
        """Seconds until the prediction is due to finish (by its latency)."""
        age = time.monotonic() - self._born[prediction["id"]]
        return self._latency(prediction) - age

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_webhook(self, prediction: dict[str, Any], url: str) -> None:
        """POST the finished prediction to `url`, signed like Replicate does."""
        await self._hold(prediction, 1800.0)  # predictions time out after 30 minutes
        if self.webhook_fault is not None or prediction["status"] not in TERMINAL:
            return
        body = json.dumps(prediction)
        headers = signed_webhook(body, self.webhook_secret)
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with (
                aiohttp.ClientSession() as session,
                session.post(url, data=body, headers=headers, timeout=_POST_TIMEOUT) as reply,
            ):
                self.webhooks_sent.append((prediction["id"], str(reply.status)))

    async def _withhold(self, request: web.Request) -> web.Response:
        """Answer nothing until the fake stops (the client's read timeout fires first)."""
        await self._released.wait()
        if request.transport is not None:
            request.transport.close()
        return web.Response()

    def _new(
        self,
        model: str,
        version: str,
        inputs: dict[str, Any],
        components: Components | None = None,
    ) -> dict[str, Any]:
        if model not in self.kinds:
            raise KeyError(f"{model} is not served by the fake: add_model() it first")
        pid = secrets.token_hex(10)
        self._asked[pid] = (model, components or self.schemas[self.latest[model]])
        prediction = {
            "id": pid,
            "model": self.model_alias.get(model, model),  # real answers may name a deployment
            "version": version,
            "input": inputs,
            "status": "starting",
            "output": None,
            "logs": "",
            "error": None,
            "metrics": {},
            "created_at": now_iso(),
            "started_at": None,
            "completed_at": None,
            "urls": {
                "get": f"{self.base_url}/v1/predictions/{pid}",
                "cancel": f"{self.base_url}/v1/predictions/{pid}/cancel",
            },
        }
        if self.kinds[model] == "text":
            prediction["urls"]["stream"] = f"{self.base_url}/stream/{pid}"
            scripted = self._behaviour(str(inputs.get("prompt", "")))
            asked = render_prompt(inputs, self._asked[pid][1])
            self._answers[pid] = "" if scripted else self.text_reply(asked)
        self.predictions[pid] = prediction
        self._born[pid] = time.monotonic()
        self._born_wall[pid] = time.time()
        self.create_times.append(time.monotonic())
        return prediction

    async def _get(self, request: web.Request) -> web.Response:
        if (denied := self._record(request)) is not None:
            return denied
        if self.get_faults:
            return error_reply(self.get_faults.popleft(), "injected")
        if (fault := self._random_get_fault()) is not None:
            return fault
        prediction = self.predictions.get(request.match_info["id"])
        if prediction is None:
            return error_reply(404, "Not found.")
        return web.json_response(self._view(prediction))

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """A text prediction's answer as server-sent events, as it is written."""
        self.requests.append((request.method, request.path_qs, dict(request.headers)))
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return error_reply(401, "Invalid API token")
        if self.stream_status is not None:
            return error_reply(self.stream_status, "injected")
        prediction = self.predictions.get(request.match_info["id"])
        if prediction is None or prediction["id"] not in self._answers:
            return error_reply(404, "Not found.")
        pid = prediction["id"]
        self.streams.append(pid)
        ttft = self.text_timing.ttft_s if self.text_timing else 0.0
        return await sse_answer(
            request,
            self._answers[pid],
            self._born[pid],
            (ttft, self._latency(prediction)),
            lambda: self._view(prediction),
        )

    async def _list(self, request: web.Request) -> web.Response:
        if (denied := self._record(request)) is not None:
            return denied
        if (fault := self._random_get_fault()) is not None:
            return fault
        start = int(request.query.get("cursor", "0"))
        newest = list(reversed(self.predictions.values()))
        page = newest[start : start + self.page_size]
        more = start + self.page_size < len(newest)
        next_url = f"{self.base_url}/v1/predictions?cursor={start + self.page_size}"
        return web.json_response(
            {
                "previous": None,
                "next": next_url if more else None,
                "results": [self._view(p) for p in page],
            }
        )

    async def _cancel(self, request: web.Request) -> web.Response:
        if (denied := self._record(request)) is not None:
            return denied
        prediction = self.predictions.get(request.match_info["id"])
        if prediction is None:
            return error_reply(404, "Not found.")
        self.cancels.append(prediction["id"])
        self._view(prediction)
        if prediction["status"] not in ("succeeded", "failed", "canceled", "aborted"):
            prediction.update(status="canceled", completed_at=now_iso())
        return web.json_response(self._view(prediction))

    async def _upload(self, request: web.Request) -> web.Response:
        if (denied := self._record(request)) is not None:
            return denied
        form = await request.post()
        part = form.get("content")
        if not isinstance(part, web.FileField):
            return error_reply(400, "content is required")
        data = part.file.read()
        fid = secrets.token_hex(8)
        self.uploads[fid] = data
        return web.json_response(
            {
                "id": fid,
                "name": part.filename,
                "content_type": part.content_type,
                "size": len(data),
                "etag": fid,
                "checksums": {"sha256": fid},
                "metadata": {},
                "created_at": now_iso(),
                "expires_at": None,
                "urls": {"get": f"{self.base_url}/v1/files/{fid}"},
            },
            status=201,
        )

    async def _file_info(self, request: web.Request) -> web.Response:
        if (denied := self._record(request)) is not None:
            return denied
        fid = request.match_info["id"]
        if fid not in self.uploads:
            return error_reply(404, "Not found.")
        return web.json_response({"id": fid, "size": len(self.uploads[fid])})

    async def _serve(self, request: web.Request) -> web.Response:
        self.file_headers.append(dict(request.headers))
        name = request.match_info["name"]
        if name.endswith(".png"):
            return web.Response(body=self._png, content_type=self.serve_type or "image/png")
        if name.endswith(".mp4"):
            return web.Response(body=self.video, content_type=self.serve_type or "video/mp4")
        return error_reply(404, "Not found.")

    async def _model(self, request: web.Request) -> web.Response:
        if (denied := self._record(request)) is not None:
            return denied
        name = f"{request.match_info['owner']}/{request.match_info['name']}"
        if name not in self.latest:
            return error_reply(404, "Not found.")
        self.schema_fetches[name] += 1
        description = model_schemas.DESCRIPTIONS.get(name, f"The {name} model")
        latest = self.version_view(self.latest[name])
        return web.json_response(model_json(name, description, len(self.created(name)), latest))

    async def _version(self, request: web.Request) -> web.Response:
        if (denied := self._record(request)) is not None:
            return denied
        name = f"{request.match_info['owner']}/{request.match_info['name']}"
        version = request.match_info["version"]
        if self.versions.get(version) != name or self.schema_of(version) is None:
            return error_reply(404, "Not found.")
        self.schema_fetches[name] += 1
        return web.json_response(self.version_view(version))

    async def _secret(self, request: web.Request) -> web.Response:
        if (denied := self._record(request)) is not None:
            return denied
        return web.json_response({"key": self.webhook_secret})

    async def _stats(self, request: web.Request) -> web.Response:
        times = self.create_times
        return web.json_response(
            {
                "creates": len(times),
                "first": times[0] if times else None,
                "last": times[-1] if times else None,
                "throttled": self.throttled,
                "requests": len(self.requests),
                "reads": len(self.read_times),
                "reads_throttled": self.reads_throttled,
                "peak_reads_per_min": _peak(self.read_times, 60.0),
                "peak_reads_per_s": _peak(self.read_times, 1.0),
                "webhooks_sent": len(self.webhooks_sent),
                "injected": dict(self.injected),
                "predictions": [
                    {
                        "id": p["id"],
                        "model": p["model"],
                        "input_key": json.dumps(p["input"], sort_keys=True),
                        "status": self._view(p)["status"],
                        "kind": self._kind(p),
                        "created_at": self._born_wall[p["id"]],  # epoch s
                        "completed_at": self._born_wall[p["id"]] + self._latency(p),
                    }
                    for p in self.predictions.values()
                ],
                "cancels": list(self.cancels),
                "ignored_inputs": [list(pair) for pair in self.ignored_inputs],
                "schema_fetches": dict(self.schema_fetches),
            }
        )

    # --- the model --------------------------------------------------------------

    def _kind(self, prediction: dict[str, Any]) -> str:
        """What the model asked for makes (the answered `model` may name a deployment)."""
        return self.kinds[self._asked[prediction["id"]][0]]

    def _view(self, prediction: dict[str, Any]) -> dict[str, Any]:
        """Advance the prediction to where time has brought it; return its JSON."""
        if prediction["status"] in ("succeeded", "failed", "canceled", "aborted"):
            return prediction
        kind = self._kind(prediction)
        latency = self._latency(prediction)
        age = time.monotonic() - self._born[prediction["id"]]
        behaviour = self._behaviour(str(prediction["input"].get("prompt", "")))
        if age >= latency * 0.1 and prediction["status"] == "starting":
            prediction.update(status="processing", started_at=now_iso())
        if behaviour == "progress" and prediction["status"] == "processing":
            done = min(99, int(age / latency * 100))  # a tqdm bar, as diffusion models print
            prediction["logs"] += f"\r{done:3d}%|{'#' * (done // 10):<10}| {done}/100 [00:01<00:01]"
        if age >= latency and behaviour != "hang":
            self._finish(prediction, kind, latency, behaviour)
        return prediction

    def _latency(self, prediction: dict[str, Any]) -> float:
        kind = self._kind(prediction)
        if kind == "text" and self.text_timing is not None:
            return self.text_timing.latency(self._answers.get(prediction["id"], ""))
        asked = self._asked[prediction["id"]][0]
        return float(
            self.latency.get(asked, self.latency.get(prediction["model"], self.latency[kind]))
        )

    def _behaviour(self, prompt: str) -> str:
        return next((b for key, b in self.script.items() if key in prompt), "")

    def _finish(self, p: dict[str, Any], kind: str, latency: float, behaviour: str) -> None:
        done = datetime.fromtimestamp(self._born_wall[p["id"]] + latency, UTC)  # when it was due
        p.update(
            completed_at=done.isoformat().replace("+00:00", "Z"),
            metrics={"predict_time": round(latency, 3)},
        )
        if behaviour.startswith("fail:"):
            p.update(status="failed", error=behaviour[5:])
        elif behaviour == "aborted":
            p.update(status="aborted")
        elif behaviour == "empty":
            p.update(status="succeeded", output=[])
        elif kind == "text":
            answer = self._answers.get(p["id"], "")
            p["metrics"].update(input_token_count=400, output_token_count=len(answer) // 4)
            pieces = [answer[i : i + 7] for i in range(0, len(answer), 7)]  # like streamed tokens
            p.update(status="succeeded", output=pieces)
        else:
            suffix = ".mp4" if kind == "video" else ".png"
            p.update(status="succeeded", output=[f"{self.base_url}/files/{p['id']}{suffix}"])
            if kind == "video":
                p["output"] = p["output"][0]  # video models return one URL, not a list
            elif p["id"] in self._data_urls:
                p["output"] = ["data:image/png;base64," + base64.b64encode(self._png).decode()]


def _peak(times: list[float], window_s: float) -> int:
    """The most events in any sliding window of `window_s` seconds."""
    best, start = 0, 0
    for end, stamp in enumerate(times):
        while stamp - times[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


_POST_TIMEOUT = aiohttp.ClientTimeout(total=10)
TOKEN = "r8_fake-test-token-0123456789"  # what tests send; must never show up anywhere


def fast_settings(fake: FakeReplicate, **changes: Any) -> Any:
    """ReplicateSettings for tests: this fake, http and 127.0.0.1 outputs allowed, tiny delays."""
    from adapters.replicate_api.settings import ReplicateSettings

    values: dict[str, Any] = {
        "api_token": TOKEN,
        "base_url": fake.base_url,
        "allow_http": True,
        "allow_private_outputs": True,  # outputs are served on 127.0.0.1 (test-only setting)
        "backoff_s": 0.01,
        "retry_cap_s": 0.2,
        "poll_min_s": 0.01,
        "poll_max_s": 0.05,
        "prefer_wait_s": 1,
        "create_per_min": 60000.0,
        "read_per_min": 600000.0,
    }
    return ReplicateSettings(**{**values, **changes})


@pytest.fixture(name="fake")
async def fake_replicate() -> AsyncIterator[FakeReplicate]:
    """A running fake Replicate API that checks the test token."""
    server = FakeReplicate(token=TOKEN)
    await server.start()
    yield server
    await server.stop()


async def _serve_forever(
    port: int,
    latency: dict[str, float],
    rate: float | None,
    read_rate: float | None,
    fault_rate: float = 0.0,
    seed: int | None = None,
    burst: int | None = None,
    text: TextTiming | None = None,
) -> None:
    fake = FakeReplicate(
        latency=latency,
        create_rate_per_min=rate,
        create_burst=burst,
        read_rate_per_min=read_rate,
        fault_rate=fault_rate,
        seed=seed,
    )
    fake.text_timing = text
    print(f"fake Replicate listening on {await fake.start(port)}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main() -> None:
    """Command line: serve the fake until interrupted."""
    parser = argparse.ArgumentParser(description="Fake Replicate API on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="fast")
    parser.add_argument("--latency", default="", help="e.g. image=0.3,video=3 (seconds)")
    parser.add_argument("--rate", type=float, default=None, help="create limit per minute")
    parser.add_argument("--read-rate", type=float, default=None, help="GET limit per minute")
    parser.add_argument(
        "--burst", type=int, default=None, help="creates allowed at once (default: 2 s' worth)"
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="chance (0-1) of a random fault per create (429, 5xx, dropped connection)"
        " and per prediction read (429, 503)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the random faults")
    parser.add_argument(
        "--tokens-per-s",
        type=float,
        default=None,
        help="language models write this fast (4 characters a token) after --ttft; "
        "default: a text prediction takes the profile's text latency",
    )
    parser.add_argument("--ttft", type=float, default=0.05, help="seconds to the first token")
    args = parser.parse_args()
    latency = dict(PROFILES[args.profile])
    for pair in filter(None, args.latency.split(",")):
        key, _, value = pair.partition("=")
        latency[key.strip()] = float(value)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _serve_forever(
                args.port,
                latency,
                args.rate,
                args.read_rate,
                args.fault_rate,
                args.seed,
                args.burst,
                TextTiming(args.ttft, args.tokens_per_s) if args.tokens_per_s else None,
            )
        )


if __name__ == "__main__":
    main()
