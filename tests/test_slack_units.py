"""Slack pieces without a network: subcommand parsing, settings, Block Kit rendering."""

from __future__ import annotations

import json

import pytest

from bot.settings import AppSettings
from bot.slack_ui.blocks import escape, status_message
from bot.slack_ui.commands import Command, parse_command
from core.errors import ConfigError, InvalidRequest
from core.model import CampaignStatus, StepName, StepStatus
from core.progress import CampaignSnapshot, ProductView, StepView


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Command("help")),
        ("  help ", Command("help")),
        ('theme:"retro cats" products:3', Command("new", 'theme:"retro cats" products:3')),
        ("new retro cats", Command("new", "retro cats")),
        ("NEW retro cats", Command("new", "retro cats")),
        ("status", Command("status")),
        ("status 3F9A1C2E", Command("status", "3f9a1c2e")),
        ("show 3f9a1c2e", Command("show", "3f9a1c2e")),
        ("cancel 3f9a1c2e", Command("cancel", "3f9a1c2e")),
        ("retry 3f9a1c2e", Command("retry", "3f9a1c2e")),
        ("history", Command("history")),
        ("retro cats with videos", Command("new", "retro cats with videos")),
    ],
)
def test_parse_command(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("history of jazz", "history: takes no arguments"),
        ("show me cats", "show: 'me cats' is not a campaign id"),
        ("cancel", "cancel: needs a campaign id"),
        ("status of things", "/campaign new status of things"),
    ],
)
def test_parse_command_mistakes(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_command(text)
    assert message in str(caught.value)


def test_settings_from_env_and_secrets_stay_out_of_repr() -> None:
    env = {
        "SLACK_BOT_TOKEN": "xoxb-secret",
        "SLACK_SIGNING_SECRET": "sign-secret",
        "SLACK_API_URL": "http://127.0.0.1:9/api",
        "SLACK_ADMINS": "UA, UB",
        "SLACK_ALLOWED_CHANNELS": "C1 C2",
        "SLACK_UPDATE_INTERVAL": "2.5",
    }
    settings = AppSettings.from_mapping(env).slack
    assert settings.api_url == "http://127.0.0.1:9/api/"
    assert settings.admins == {"UA", "UB"} and settings.allowed_channels == {"C1", "C2"}
    assert settings.update_interval_s == 2.5 and settings.max_upload_mb == 50.0
    assert "xoxb-secret" not in repr(settings) and "sign-secret" not in repr(settings)
    settings.check(socket_mode=False)
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
        settings.check(socket_mode=True)
    assert settings.may_use("U1", "C2") and not settings.may_use("U1", "C3")
    defaults = AppSettings.from_mapping({}).slack
    assert defaults.api_url == "https://slack.com/api/" and defaults.update_interval_s == 1.2
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        defaults.check(socket_mode=True)


def test_files_base_url_is_optional_and_must_be_absolute() -> None:
    assert AppSettings.from_mapping({}).slack.files_base_url is None
    env = {"SLACK_FILES_BASE_URL": " https://files.example.com/data/ "}
    assert AppSettings.from_mapping(env).slack.files_base_url == "https://files.example.com/data"
    for raw in ("files.example.com/data", "ftp://files.example.com"):
        with pytest.raises(ConfigError, match="SLACK_FILES_BASE_URL="):
            AppSettings.from_mapping({"SLACK_FILES_BASE_URL": raw})


@pytest.mark.parametrize("raw", ["0", "-1", "fast", "nan"])
def test_settings_reject_bad_numbers(raw: str) -> None:
    with pytest.raises(ConfigError, match=f"SLACK_UPDATE_INTERVAL='{raw}' is invalid"):
        AppSettings.from_mapping({"SLACK_UPDATE_INTERVAL": raw})


def snapshot(products: int, status: CampaignStatus, name: str = "Mug") -> CampaignSnapshot:
    views = [
        ProductView(i, f"{name} {i}", "mug", {StepName.IMAGE: StepView(StepStatus.SUCCEEDED)})
        for i in range(products)
    ]
    return CampaignSnapshot("abc12345", theme="<!channel> cats", status=status, products=views)


def test_status_message_stays_within_block_kit_limits() -> None:
    message = status_message(snapshot(400, CampaignStatus.RUNNING, "N" * 60), "local pool", 0.0)
    assert len(message.blocks) <= 50
    sections = [b for b in message.blocks if b["type"] == "section"]
    assert all(len(b["text"]["text"]) <= 3000 for b in sections)
    assert "more products" in sections[-1]["text"]["text"]
    assert len(message.blocks[0]["text"]["text"]) <= 150


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (CampaignStatus.RUNNING, "campaign_cancel"),
        (CampaignStatus.PARTIAL, "campaign_retry"),
        (CampaignStatus.CANCELED, "campaign_retry"),
        (CampaignStatus.SUCCEEDED, None),
    ],
)
def test_buttons_follow_the_status(status: CampaignStatus, action: str | None) -> None:
    message = status_message(snapshot(2, status), "local pool", 0.0)
    actions = [b for b in message.blocks if b["type"] == "actions"]
    found = [e["action_id"] for b in actions for e in b["elements"]]
    assert found == ([action] if action else [])
    assert all(e["value"] == "abc12345" for b in actions for e in b["elements"])


def test_user_text_is_escaped() -> None:
    assert escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    message = status_message(snapshot(1, CampaignStatus.RUNNING, "<!here>"), "x", 0.0)
    [section] = [b for b in message.blocks if b["type"] == "section"]
    assert "&lt;!here&gt; 0" in section["text"]["text"]
    assert "<!here>" not in json.dumps(message.blocks)
