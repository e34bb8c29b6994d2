"""The gallery in a real headless browser: Debian's Chromium driven by Selenium.

Opens a signed link to the list, follows the (signed) link to a campaign made
by the offline generator, and checks what a person would see: every image
decoded (naturalWidth > 0) and every video's metadata loaded (readyState >= 1,
duration > 0). A tampered link shows the 403 page. A screenshot of the
campaign page is saved (to $GALLERY_SCREENSHOT too when set, e.g.
`GALLERY_SCREENSHOT=docs/gallery.png` for docs/operations.md's picture).

Skipped with the reason when Chromium or chromedriver is missing; .ci/run
installs them (`apt-get install chromium chromium-driver`) so CI runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bot.gallery import make_link
from tests.test_gallery import SECRET, Made, build_campaigns, gallery_server

pytestmark = pytest.mark.slow

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
CHROMEDRIVER = shutil.which("chromedriver")
INSTALL = (
    "apt-get update && apt-get install -y chromium chromium-driver"
    " (Debian's packages; .ci/run does this when run as root)"
)
WIDTH = 1280


def _skip_without_a_browser() -> None:
    if CHROMIUM is None or CHROMEDRIVER is None:
        missing = "chromium" if CHROMIUM is None else "chromedriver"
        pytest.skip(f"{missing} is not installed: {INSTALL}")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed: pip install -r requirements-dev.txt")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, bot_main: ModuleType) -> Made:
    _skip_without_a_browser()
    folder = tmp_path_factory.mktemp("gallery-browser")
    return asyncio.run(build_campaigns(bot_main, folder, products=4, video_seconds=2.0))


def _browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    assert CHROMIUM is not None
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--mute-audio",
        "--no-first-run",
        f"--window-size={WIDTH},1000",
    ):
        options.add_argument(argument)
    # The driver is given: Selenium Manager never downloads anything.
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def _look(list_url: str, tampered_url: str, screenshot: Path) -> dict[str, Any]:
    """What a person sees: runs in a thread while the server runs on the test's loop."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser()
    try:
        driver.set_page_load_timeout(30)
        driver.get(list_url)
        seen: dict[str, Any] = {"list_title": driver.title}
        seen["rows"] = len(driver.find_elements(By.CSS_SELECTOR, "tbody tr"))
        driver.find_element(By.LINK_TEXT, "retro cats").click()  # a signed link on the page
        wait = WebDriverWait(driver, 30, poll_frequency=0.2)
        wait.until(
            lambda d: d.execute_script(
                "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"
            )
        )
        wait.until(
            lambda d: d.execute_script(
                "const v = [...document.querySelectorAll('video')];"
                " return v.length > 0 && v.every(x => x.readyState >= 1 && x.duration > 0)"
            )
        )
        seen["title"] = driver.title
        seen["images"] = driver.execute_script(
            "return [...document.images].map(i => [i.alt, i.naturalWidth, i.naturalHeight])"
        )
        seen["videos"] = driver.execute_script(
            "return [...document.querySelectorAll('video')]"
            ".map(v => [v.readyState, v.duration, v.videoWidth, v.error && v.error.code])"
        )
        with contextlib.suppress(TimeoutException):  # for the picture only: no spinners
            WebDriverWait(driver, 5, poll_frequency=0.2).until(
                lambda d: d.execute_script(
                    "return [...document.querySelectorAll('video')]"
                    ".every(x => x.readyState >= 2 && x.networkState !== 2)"
                )
            )
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(WIDTH, min(int(height) + 140, 4000))
        driver.save_screenshot(str(screenshot))
        driver.get(tampered_url)
        seen["tampered_title"] = driver.title
        seen["tampered_text"] = driver.find_element(By.TAG_NAME, "body").text
        return seen
    finally:
        driver.quit()


async def test_the_gallery_shows_images_and_videos_in_a_real_browser(
    made: Made, tmp_path: Path
) -> None:
    screenshot = tmp_path / "gallery.png"
    async with gallery_server(made) as base:
        list_url = make_link(SECRET, base, "/campaigns", 600)
        campaign_url = make_link(SECRET, base, f"/campaigns/{made.nice}", 600)
        tampered = campaign_url[:-1] + ("0" if campaign_url[-1] != "0" else "1")
        seen = await asyncio.to_thread(_look, list_url, tampered, screenshot)
    assert seen["list_title"] == "Campaigns"
    assert seen["rows"] == 3
    assert seen["title"] == f"Campaign {made.nice}"
    images = seen["images"]
    assert len(images) == 5  # the contact sheet and four product images
    assert all(width > 0 and height > 0 for _, width, height in images), images
    videos = seen["videos"]
    assert len(videos) == 5  # the campaign reel first, then the four product clips
    assert videos[0][1] > sum(duration for _, duration, _, _ in videos[1:])  # title card + clips
    for ready, duration, width, error in videos:
        assert ready >= 1 and duration > 0 and width > 0 and error is None, videos
    assert seen["tampered_title"] == "Forbidden"
    assert "Link not valid" in seen["tampered_text"]
    assert "retro cats" not in seen["tampered_text"]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    wanted = os.environ.get("GALLERY_SCREENSHOT")
    if wanted:
        Path(wanted).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, wanted)
