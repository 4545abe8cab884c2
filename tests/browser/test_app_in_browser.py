"""The web app in a real browser: Debian's Chromium driven by Playwright.

Starts ``faceattrs app`` on a free loopback port, uploads the sample photo,
waits for the result cards and checks their labels; screenshots go to
``test-artifacts/``. Skipped (with the reason) where Chromium or Playwright
is missing; ``.ci/run`` installs both.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.servers import running

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SAMPLE = ROOT / "src" / "faceattrs" / "assets" / "sample_photo.jpg"
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app_url(model_dir, tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium not installed (apt-get install chromium): browser test skipped")
    pytest.importorskip("playwright.sync_api", reason="playwright not installed: browser test skipped")
    log = tmp_path_factory.mktemp("app") / "app.log"
    with running("app", "/_stcore/health", model_dir, log) as url:
        yield url


@pytest.fixture(scope="module")
def page(app_url, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            viewport={"width": 1400, "height": 1000},
            args=[
                "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-quic",
            ],
        )  # fmt: skip
        yield context.new_page()
        context.close()


def test_upload_sample_photo_shows_result_cards(app_url, page):
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(app_url, wait_until="networkidle")
    page.get_by_text("Upload a photo, take one with the camera").wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "app_main.png"))
    page.locator("input[type=file]").first.set_input_files(str(SAMPLE))
    page.get_by_text("Face 5", exact=True).wait_for(timeout=90_000)
    body = page.inner_text("body")
    for i in range(1, 6):
        assert f"Face {i}" in body
    assert "90% range:" in body and "Gender:" in body and "Ethnicity:" in body
    assert "Annotated PNG" in body and "Traceback" not in body
    page.screenshot(path=str(ARTIFACTS / "app_result.png"), full_page=True)
    # each face card draws two charts: ethnicity probabilities and the age distribution
    page.locator(".vega-embed").nth(9).wait_for(timeout=60_000)
    page.get_by_text("Face 1", exact=True).evaluate("heading => heading.scrollIntoView()")
    page.screenshot(path=str(ARTIFACTS / "app_faces.png"))


def test_about_page(app_url, page):
    page.goto(f"{app_url}/about", wait_until="networkidle")
    # Wait for each text to be visible instead of reading one snapshot of the body: one CI run read the body after
    # the last paragraph had arrived and still missed the metric label "Age MAE" (not reproduced here; a label
    # briefly hidden while Streamlit lays it out would do it).
    texts = ("Measured performance", "Age MAE", "Intended use", "Out of scope — do not use it for", "in memory only")
    for text in texts:
        page.get_by_text(text, exact=True).first.wait_for(timeout=60_000)
    assert "Traceback" not in page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "app_about.png"), full_page=True)
