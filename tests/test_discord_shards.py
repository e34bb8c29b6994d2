"""Sharding: CampaignBot is an AutoShardedBot that runs DISCORD_SHARD_IDS of
DISCORD_SHARD_COUNT shards, against the fake gateway, which (like Discord) sends
a guild's events only to the connection of its shard, `(guild_id >> 22) % count`.
"""

from __future__ import annotations

from pathlib import Path

from core.model import CampaignStatus
from storage.sqlite_store import SqliteStore
from tests.fakes import GatedGenerator
from tests.fakes.discord_api import FakeDiscord, snowflake
from tests.fakes.discord_gateway import shard_of, snowflake_on
from tests.fakes.discord_harness import (  # bot_starter and fake_server register fixtures
    TOKEN,
    at_least,
    bot_starter,  # noqa: F401
    callback,
    fake_server,  # noqa: F401
    started,
)


def test_snowflake_on_places_a_guild_on_the_shard_asked_for() -> None:
    for count in (1, 2, 3, 16):
        for shard in range(count):
            guild = snowflake_on(shard, count)
            assert shard_of(guild, count) == shard == (int(guild) >> 22) % count
    assert shard_of(None, 4) == 0  # events without a guild (DMs) go to shard 0


async def test_two_processes_split_the_servers_and_the_guild_s_shard_answers(
    fake: FakeDiscord, make_service, start_bot
) -> None:
    fake.guild_id = snowflake_on(1, 2)  # the guild with the channel: shard 1 of 2
    other = snowflake_on(0, 2)
    fake.extra_guild_ids = [other]
    gens = [GatedGenerator(open_all=True), GatedGenerator(open_all=True)]
    services = [make_service(gen) for gen in gens]  # one store, as two processes share it
    first = await start_bot(services[0], shard_count=2, shard_ids=(0,))
    second = await start_bot(services[1], shard_count=2, shard_ids=(1,), sync=False)

    assert fake.identified_shards == [[0, 2], [1, 2]]
    assert {i["token"] for i in fake.identifies} == {TOKEN}  # one bot, one token
    assert sorted(c.shard for c in fake.connections) == [(0, 2), (1, 2)]  # at once
    assert not fake.find("GET", r"/gateway/bot")  # the count is set: nothing to ask
    assert (first.shard_count, list(first.shards)) == (2, [0])
    assert (second.shard_count, list(second.shards)) == (2, [1])
    assert [g.id for g in first.guilds] == [int(other)]  # each bot sees its shard's guilds
    assert [g.id for g in second.guilds] == [int(fake.guild_id)]

    payload = fake.command("new", snowflake(), {"theme": "retro cats", "products": 2})
    await fake.interact(payload)
    campaign = await services[1].wait((await started(fake, services[1])).id)
    assert campaign.status is CampaignStatus.SUCCEEDED
    assert campaign.origin.guild == fake.guild_id
    await fake.wait_for(lambda: at_least(fake, campaign.origin.thread, 3))  # 2 posts + summary
    assert len(callback(fake, payload)) == 1  # only the bot on shard 1 got it and answered
    assert gens[1].calls and not gens[0].calls  # and ran the campaign


async def test_unset_settings_run_discord_s_recommended_count_in_one_process(
    fake: FakeDiscord, make_service, start_bot
) -> None:
    fake.recommended_shards = 2
    fake.guild_id = snowflake_on(1, 2)
    bot = await start_bot(make_service(GatedGenerator(open_all=True)))  # waits ~5 s: see below
    (ask,) = fake.find("GET", r"/gateway/bot", status=200)
    assert ask.auth == f"Bot {TOKEN}"
    # discord.py identifies one shard, then the next 5 s later (Discord's identify limit)
    assert fake.identified_shards == [[0, 2], [1, 2]]
    assert (bot.shard_count, sorted(bot.shards)) == (2, [0, 1])
    assert [g.id for g in bot.guilds] == [int(fake.guild_id)]
    payload = fake.command("help", snowflake())
    await fake.interact(payload)
    (answer,) = await fake.wait_for(lambda: callback(fake, payload))
    assert answer.json["type"] == 4


async def test_the_gateway_url_setting_holds_when_discord_picks_the_count(
    fake: FakeDiscord, make_service, start_bot
) -> None:
    # /gateway/bot names a URL that is no gateway: DISCORD_GATEWAY_URL must win over it
    fake.bot_gateway_url = f"ws://127.0.0.1:{fake.port}/not-the-gateway"
    bot = await start_bot(make_service(GatedGenerator(open_all=True)), gateway_url=fake.gateway_url)
    assert len(fake.find("GET", r"/gateway/bot", status=200)) == 1
    assert fake.identified_shards == [[0, 1]]  # Discord's count (1), on the set URL
    assert bot.shard_count == 1


async def test_an_interaction_delivered_to_two_processes_runs_once(
    fake: FakeDiscord, make_service, start_bot, tmp_path: Path
) -> None:
    # During a deploy two processes may hold the same shard: Discord sends the
    # interaction to both. The key in the shared database lets one of them take it.
    gens = [GatedGenerator(open_all=True), GatedGenerator(open_all=True)]
    services = [make_service(gen) for gen in gens]
    guards = [await SqliteStore.open(tmp_path / "shared.db") for _ in gens]  # two connections
    try:
        await start_bot(services[0], replays=guards[0])
        await start_bot(services[1], replays=guards[1], sync=False)
        payload = fake.command("new", snowflake(), {"theme": "twice cats", "products": 1})
        await fake.interact(payload)
        (answer,) = await fake.wait_for(lambda: callback(fake, payload))
        await fake.wait_for(lambda: bool(gens[0].calls or gens[1].calls))
        assert answer.json["type"] == 5  # deferred: the campaign starts
        assert len(callback(fake, payload)) == 1  # one answer, from one process
        assert bool(gens[0].calls) != bool(gens[1].calls)  # which ran the one campaign
    finally:
        for guard in guards:
            await guard.close()
