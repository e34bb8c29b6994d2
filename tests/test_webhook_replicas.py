"""A Replicate webhook may land on any replica: the one whose step waits for it finishes
at once (PostgreSQL NOTIFY nudges its poll), though its own polls are 30 s apart.

Two replicas in one test: A's runtime waits for a video; the account's webhook URL is B's
receiver; each replica has its own store (own pool) on one database.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from adapters.replicate_api.generator import ReplicateRuntime
from adapters.replicate_api.predict import predict
from adapters.replicate_api.webhooks import WebhookReceiver
from core.model import StepKind
from storage.postgres_store import PostgresStore
from tests.fakes.replicate import FakeReplicate, fake_replicate, fast_settings  # noqa: F401

VIDEO = "bytedance/seedance-1-lite"
SLOW_POLLS = {"poll_min_s": 30.0, "poll_max_s": 30.0}  # only a webhook can finish in time


def _polls_of(fake: FakeReplicate, prediction_id: str) -> int:
    return sum(1 for m, p, _ in fake.requests if m == "GET" and p.endswith(prediction_id))


async def test_a_webhook_on_another_replica_finishes_the_step_at_once(
    fake: FakeReplicate, pg_url: str
) -> None:
    fake.latency["video"] = 0.2
    async with AsyncExitStack() as stack:
        stores = [await PostgresStore.open(pg_url) for _ in range(2)]
        for store in stores:
            stack.push_async_callback(store.close)
        b = ReplicateRuntime(fast_settings(fake, webhook_url="http://127.0.0.1:1/hook"))
        receiver = WebhookReceiver(b)
        receiver.announce = stores[1].announce_prediction  # B has no step waiting for it
        port = await stack.enter_async_context(receiver.listen("127.0.0.1", 0))
        stack.push_async_callback(b.aclose)
        a = ReplicateRuntime(
            fast_settings(fake, webhook_url=f"http://127.0.0.1:{port}/hook", **SLOW_POLLS)
        )
        stack.push_async_callback(a.aclose)
        stores[0].on_predictions(a.nudge)  # what bot.py wires on every replica
        await stores[0].notices.listen()
        done = await predict(
            a.current().api, VIDEO, {"prompt": "orbit", "image": "data:,"},
            kind=StepKind.VIDEO, deadline_s=10,
        )  # fmt: skip
    assert done.status == "succeeded" and done.output
    assert receiver.received == 1  # the webhook went to B
    assert _polls_of(fake, done.id) == 1  # A polled once: when B's notice nudged it
