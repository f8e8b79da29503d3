"""The built documentation site renders in headless Chromium: quick-start code visible, images loaded."""

import functools
import http.server
import pathlib
import shutil
import subprocess
import sys
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def site_url(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        check=True,
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed; .ci/run installs Debian's `chromium` package.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def load(browser, url):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url, wait_until="load")
    return page


def images_state(page):
    return page.evaluate(
        "Array.from(document.querySelectorAll('article img'))"
        ".map(img => ({src: img.getAttribute('src'), ok: img.complete && img.naturalWidth > 0}))"
    )


def test_home_page_shows_quick_start_and_its_images_load(browser, site_url):
    page = load(browser, f"{site_url}/")
    text = page.inner_text("article")
    assert "Quick start" in text
    assert "GenARMLogitsProcessor(reward_model, alpha=1.0, beta=0.5" in text
    images = images_state(page)
    assert images, "the home page should show a picture"
    assert all(image["ok"] for image in images), images
    page.close()


def test_a_tutorial_renders_its_code(browser, site_url):
    page = load(browser, f"{site_url}/tutorials/guide-a-base-model/")
    text = page.inner_text("article")
    assert "Offline, on the embedded models" in text
    assert 'AutoregressiveRewardModel.from_pretrained(default_asset_path("arm-sentiment"))' in text
    assert all(image["ok"] for image in images_state(page))
    page.close()


def test_the_token_reward_heatmap_image_loads(browser, site_url):
    page = load(browser, f"{site_url}/how-to/token-rewards/")
    images = images_state(page)
    assert any("token-rewards.png" in image["src"] for image in images), images
    assert all(image["ok"] for image in images), images
    page.close()


def test_a_guide_page_renders_code_and_math(browser, site_url):
    page = load(browser, f"{site_url}/concepts/")
    text = page.inner_text("article")
    assert "The decoding rule" in text
    assert "temperature=tau * (1 + sum(alpha))" in text
    assert all(image["ok"] for image in images_state(page))
    page.close()
