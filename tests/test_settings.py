"""Settings.from_env: defaults, overrides, clear errors, secrets kept out of repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import Settings


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.data_dir == Path("data")
    assert s.database == Path("data/campaigns.db")
    assert (s.executor, s.generator, s.max_products) == ("auto", "auto", 20)


def test_overrides() -> None:
    s = Settings.from_env(
        {
            "CAMPAIGN_DATA_DIR": "/srv/c",
            "CAMPAIGN_DB": "/db/x.db",
            "CAMPAIGN_EXECUTOR": "Local",
            "CAMPAIGN_GENERATOR": "offline",
            "CAMPAIGN_MAX_PRODUCTS": "50",
            "CAMPAIGN_LIMIT_IMAGE": "12",
            "CAMPAIGN_LIMIT_VIDEO": "3",
            "CAMPAIGN_PROGRESS_INTERVAL": "2.5",
        }
    )
    assert s.database == Path("/db/x.db")
    assert s.executor == "local"
    assert s.max_products == 50
    assert (s.limits.image, s.limits.video) == (12, 3)
    assert s.progress_interval_s == 2.5


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("CAMPAIGN_LIMIT_IMAGE", "0", "at least 1"),
        ("CAMPAIGN_MAX_PRODUCTS", "lots", "CAMPAIGN_MAX_PRODUCTS"),
        ("CAMPAIGN_EXECUTOR", "kubernetes", "allowed: auto, local, ray"),
        ("CAMPAIGN_PROGRESS_INTERVAL", "-1", "above 0"),
    ],
)
def test_invalid_values_name_the_variable(name: str, value: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as err:
        Settings.from_env({name: value})
    assert name in str(err.value)


def test_token_is_not_in_repr() -> None:
    s = Settings.from_env({"REPLICATE_API_TOKEN": "r8_supersecret"})
    assert s.replicate_api_token == "r8_supersecret"
    assert "r8_supersecret" not in repr(s)
