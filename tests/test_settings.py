"""The settings model: defaults, overrides, clear errors, secrets kept out of repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.discord_ui.settings import DiscordSettings
from bot.settings import AppSettings
from core.errors import ConfigError
from core.settings import CoreSettings


def test_defaults() -> None:
    s = AppSettings.from_mapping({}).core
    assert s.data_dir == Path("data")
    assert s.database == Path("data/campaigns.db")
    assert (s.executor, s.generator, s.max_products) == ("auto", "auto", 20)
    assert (s.lease_s, s.cancel_poll_s) == (10.0, 1.0)


def test_overrides() -> None:
    s = AppSettings.from_mapping(
        {
            "CAMPAIGN_DATA_DIR": "/srv/c",
            "CAMPAIGN_DB": "/db/x.db",
            "CAMPAIGN_EXECUTOR": "Local",
            "CAMPAIGN_GENERATOR": "offline",
            "CAMPAIGN_MAX_PRODUCTS": "50",
            "CAMPAIGN_LIMIT_IMAGE": "12",
            "CAMPAIGN_LIMIT_VIDEO": "3",
            "CAMPAIGN_PROGRESS_INTERVAL": "2.5",
            "CAMPAIGN_CANCEL_POLL_S": "120",
        }
    ).core
    assert s.database == Path("/db/x.db")
    assert s.executor == "local"
    assert s.max_products == 50
    assert (s.limits.image, s.limits.video) == (12, 3)
    assert s.progress_interval_s == 2.5
    assert s.cancel_poll_s == 120.0


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("CAMPAIGN_LIMIT_IMAGE", "0", "at least 1"),
        ("CAMPAIGN_MAX_PRODUCTS", "lots", "CAMPAIGN_MAX_PRODUCTS"),
        ("CAMPAIGN_EXECUTOR", "kubernetes", "allowed: auto, local, ray"),
        ("CAMPAIGN_PROGRESS_INTERVAL", "-1", "above 0"),
        ("CAMPAIGN_CANCEL_POLL_S", "0", "above 0"),
        ("REPLICATE_POLL_MIN", "inf", "finite number above 0"),
        ("CAMPAIGN_PROGRESS_INTERVAL", "nan", "finite number above 0"),
    ],
)
def test_invalid_values_name_the_variable(name: str, value: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as err:
        AppSettings.from_mapping({name: value})
    assert name in str(err.value)


SECRETS = {
    "REPLICATE_API_TOKEN": "r8_supersecret",
    "REPLICATE_WEBHOOK_SECRET": "whsec_supersecret",
    "SLACK_BOT_TOKEN": "xoxb-supersecret",
    "SLACK_SIGNING_SECRET": "signing-supersecret",
    "SLACK_APP_TOKEN": "xapp-supersecret",
    "DISCORD_TOKEN": "discord-supersecret",
    "CAMPAIGN_GALLERY_SECRET": "gallery-supersecret-0123456789",
}


def test_secrets_are_read_once_and_never_shown() -> None:
    s = AppSettings.from_mapping(SECRETS)
    assert s.replicate.token == "r8_supersecret"  # one token, in one section
    assert s.discord.bot_token() == "discord-supersecret"
    shown = repr(s) + str(s) + s.model_dump_json()
    assert "supersecret" not in shown


def test_a_section_given_in_code_is_used_as_it_is() -> None:
    core = CoreSettings(max_products=3)
    s = AppSettings.of(core=core)
    assert s.core is core and s.replicate.api_token is None  # nothing read from the environment


def test_every_section_reads_only_its_own_variables() -> None:
    s = AppSettings.from_mapping({"RAY_ADDRESS": "10.0.0.5:6379", "SLACK_ADMINS": "U1, U2 U3"})
    assert s.ray.address == "10.0.0.5:6379"
    assert s.slack.admins == {"U1", "U2", "U3"}  # comma or space separated, never JSON
    assert s.core == CoreSettings() and s.discord.guild_ids == ()


def test_the_discord_token_is_required_only_by_discord() -> None:
    with pytest.raises(ConfigError, match="DISCORD_TOKEN is not set"):
        AppSettings.from_mapping({}).discord.bot_token()


def test_the_database_is_a_sqlite_file_or_a_postgres_url_kept_secret() -> None:
    url = "postgresql://bot:hunter2-secret@db.internal:5432/campaigns?sslmode=require"
    core = AppSettings.from_mapping({"CAMPAIGN_DB": url}).core
    assert core.uses_postgres and core.db_path is None
    assert core.database_url is not None and core.database_url.get_secret_value() == url
    assert "hunter2" not in repr(core) and "hunter2" not in core.model_dump_json()
    assert not AppSettings.from_mapping({"CAMPAIGN_DB": "/srv/c.db"}).core.uses_postgres
    with pytest.raises(ConfigError, match="mysql:// is not a database"):
        AppSettings.from_mapping({"CAMPAIGN_DB": "mysql://u:p@h/d"})


def test_discord_shards_are_unset_by_default_and_read_like_the_id_lists() -> None:
    assert AppSettings.from_mapping({}).discord.shard_count is None
    assert AppSettings.from_mapping({}).discord.shard_ids is None  # all, Discord's count
    s = AppSettings.from_mapping({"DISCORD_SHARD_COUNT": "8", "DISCORD_SHARD_IDS": "4, 5 6,7"})
    assert (s.discord.shard_count, s.discord.shard_ids) == (8, (4, 5, 6, 7))
    alone = AppSettings.from_mapping({"DISCORD_SHARD_COUNT": "3"}).discord
    assert (alone.shard_count, alone.shard_ids) == (3, None)  # every shard of 3, here


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DISCORD_SHARD_IDS": "3"}, "DISCORD_SHARD_IDS='3' is invalid: needs DISCORD_SHARD_COUNT"),
        (
            {"DISCORD_SHARD_IDS": "1 3", "DISCORD_SHARD_COUNT": "2"},
            "DISCORD_SHARD_IDS='1,3' is invalid: shard 3 is out of range",
        ),
        (
            {"DISCORD_SHARD_IDS": "0", "DISCORD_SHARD_COUNT": "0"},
            "DISCORD_SHARD_COUNT='0' is invalid: must be a whole number of at least 1",
        ),
        ({"DISCORD_SHARD_COUNT": "-2"}, "DISCORD_SHARD_COUNT='-2' is invalid"),
        ({"DISCORD_SHARD_COUNT": "two"}, "DISCORD_SHARD_COUNT='two' is invalid"),
        (
            {"DISCORD_SHARD_IDS": "[0, 1]", "DISCORD_SHARD_COUNT": "2"},
            "DISCORD_SHARD_IDS='[0, 1]' is invalid: must be shard ids",  # not JSON
        ),
        (
            {"DISCORD_SHARD_IDS": "1,1", "DISCORD_SHARD_COUNT": "2"},
            "DISCORD_SHARD_IDS='1,1' is invalid: lists shard 1 twice",
        ),
    ],
)
def test_discord_shards_that_cannot_run_stop_the_bot(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        AppSettings.from_mapping(env)
    assert str(err.value).startswith(message)


def test_discord_shards_given_in_code_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="DISCORD_SHARD_COUNT='0' is invalid"):
        DiscordSettings(shard_count=0)
    with pytest.raises(ConfigError, match="DISCORD_SHARD_IDS='2' is invalid: shard 2 is out"):
        DiscordSettings(shard_count=2, shard_ids=(2,))
    with pytest.raises(ConfigError, match="DISCORD_SHARD_IDS='' is invalid: must list at least"):
        DiscordSettings(shard_count=2, shard_ids=())
    assert DiscordSettings(shard_count=2, shard_ids=(1,)).shard_ids == (1,)
