"""The documentation site builds without a warning and renders in headless Chromium.

The build test needs only mkdocs. The tests marked `browser` open the built pages in Debian's Chromium through
Playwright: quick-start code visible, images loaded, formulas typeset by the vendored KaTeX, nothing fetched
from outside the site. Without Chromium they are skipped, except where `HF_GENARM_REQUIRE_BROWSER=1` (set by
`.ci/run`), where a missing browser fails them: CI never skips them silently.
"""

import functools
import http.server
import os
import pathlib
import re
import shutil
import sys
import threading

import pytest
from process_group import run_killing_group

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRE_BROWSER = os.environ.get("HF_GENARM_REQUIRE_BROWSER", "") == "1"
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
PAGE_RESOURCES = {"script", "stylesheet", "font", "image"}
# Pages whose Markdown holds formulas; each must show them typeset.
PAGES_WITH_MATH = ["", "concepts/", "tutorials/train-an-arm/", "tutorials/multi-objective/"]


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    """Build the site as `.ci/run` does; return the folder and everything mkdocs printed."""
    site = tmp_path_factory.mktemp("site")
    result = run_killing_group(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        timeout=900,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    return site, result


@pytest.mark.slow  # builds the site (about 15 s)
def test_docs_build_prints_no_warning(built_site):
    _, result = built_site
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if "WARNING" in line]
    assert result.returncode == 0, output
    assert not warnings, "\n".join(warnings)


@pytest.mark.slow
def test_api_reference_shows_plain_types_and_default_values(built_site):
    site, result = built_site
    assert result.returncode == 0, result.stdout + result.stderr
    page = (site / "api" / "index.html").read_text(encoding="utf-8")
    types = re.findall(r'<td>\s*(?:<code>)?\s*<span class="doc-param-annotation">(.*?)</span>', page, re.DOTALL)
    types += re.findall(r"<td>\s*<code>(.*?)</code>\s*</td>", page, re.DOTALL)
    assert len(types) > 50, "the parameter tables were not found"
    assert not [cell for cell in types if "`" in cell or "*optional*" in cell or "defaults to" in cell]
    assert "DEFAULT_BETA_R" not in page, "defaults that name a constant are shown by value"
    assert re.search(r"beta_r.*?<code>0\.1</code>", page, re.DOTALL), "ARMConfig.beta_r's default is shown as 0.1"


def test_ci_fails_on_docs_warnings_requires_the_browser_and_installs_from_the_constraints():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    build = [line for line in ci.splitlines() if line.strip().startswith("mkdocs build")]
    assert build and all("--strict" in line and "--quiet" not in line and " -q" not in line for line in build)
    assert 'grep -q "WARNING"' in ci, "a printed warning fails CI even if strict mode did not count it"
    assert "export HF_GENARM_REQUIRE_BROWSER=1" in ci
    assert '-e ".[dev]" -c constraints/dev.txt' in ci


def test_constraints_pin_the_docs_toolchain_while_the_package_ranges_stay_open():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
        import tomli as tomllib

    pins = dict(
        line.split("==")
        for line in (ROOT / "constraints" / "dev.txt").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    for tool in ("mkdocs", "mkdocs-material", "mkdocstrings", "mkdocstrings-python", "griffelib", "playwright"):
        assert tool in pins, f"{tool} is not pinned in constraints/dev.txt"
    assert "torch" not in pins, "torch comes first, from the index that fits the machine"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    assert not [r for r in requirements if "==" in r], "pyproject.toml keeps ranges; pins live in constraints/"


def test_every_markdown_page_is_in_the_nav():
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(entries):
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            yield from pages(value) if isinstance(value, list) else [value]

    in_nav = set(pages(config["nav"]))
    on_disk = {str(path.relative_to(ROOT / "docs")) for path in (ROOT / "docs").rglob("*.md")}
    assert on_disk - in_nav == set(), "pages missing from mkdocs.yml's nav"
    assert in_nav - on_disk == set(), "nav entries without a page"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # one line per request would bury pytest's report
        pass


@pytest.fixture(scope="module")
def site_url(built_site):
    site, result = built_site
    assert result.returncode == 0, result.stdout + result.stderr
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = (
        "Chromium is not installed (Debian: `apt-get install chromium`)"
        if CHROMIUM is None
        else "playwright is not installed (`pip install -e '.[dev]'`)"
        if sync_playwright is None
        else None
    )
    if missing:
        if REQUIRE_BROWSER:
            pytest.fail(f"{missing}, and HF_GENARM_REQUIRE_BROWSER=1 requires the browser tests to run.")
        pytest.skip(f"{missing}; set HF_GENARM_REQUIRE_BROWSER=1 to make this a failure.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def load(browser, site_url, path):
    """Open a page; fail when a script, style sheet, font or image comes from outside the site (offline docs).

    The theme's repository widget asks GitHub for star counts by XHR; offline it shows the link without them.
    """
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    outside = []

    def check(request):
        if request.resource_type in PAGE_RESOURCES and not request.url.startswith(site_url):
            outside.append(request.url)

    page.on("request", check)
    page.goto(f"{site_url}/{path}", wait_until="load")
    page.evaluate("document.fonts.ready.then(() => true)")
    assert outside == [], f"{path or 'home'} fetched from outside the site: {outside}"
    return page


def images_state(page):
    return page.evaluate(
        "Array.from(document.querySelectorAll('article img'))"
        ".map(img => ({src: img.getAttribute('src'), ok: img.complete && img.naturalWidth > 0}))"
    )


@pytest.mark.browser
def test_home_page_shows_quick_start_and_its_images_load(browser, site_url):
    page = load(browser, site_url, "")
    text = page.inner_text("article")
    assert "Quick start" in text
    assert 'default_asset_path("arm-sentiment")' in text
    images = images_state(page)
    assert images, "the home page should show a picture"
    assert all(image["ok"] for image in images), images
    page.close()


@pytest.mark.browser
def test_a_tutorial_renders_its_code(browser, site_url):
    page = load(browser, site_url, "tutorials/guide-a-base-model/")
    text = page.inner_text("article")
    assert "Offline, on the embedded models" in text
    assert 'AutoregressiveRewardModel.from_pretrained(default_asset_path("arm-sentiment"))' in text
    assert all(image["ok"] for image in images_state(page))
    page.close()


@pytest.mark.browser
def test_the_token_reward_heatmap_image_loads(browser, site_url):
    page = load(browser, site_url, "how-to/token-rewards/")
    images = images_state(page)
    assert any("token-rewards.png" in image["src"] for image in images), images
    assert all(image["ok"] for image in images), images
    page.close()


@pytest.mark.browser
@pytest.mark.parametrize("path", PAGES_WITH_MATH, ids=lambda path: path.strip("/") or "home")
def test_formulas_are_typeset_by_katex(browser, site_url, path):
    page = load(browser, site_url, path)
    state = page.evaluate(
        """() => {
            const formulas = Array.from(document.querySelectorAll('article .arithmatex'));
            return {
                formulas: formulas.length,
                typeset: formulas.filter(f => f.querySelector('.katex .katex-html')).length,
                errors: document.querySelectorAll('article .katex-error').length,
                katexFontLoaded: Array.from(document.fonts).some(
                    f => f.family.includes('KaTeX') && f.status === 'loaded'),
            };
        }"""
    )
    assert state["formulas"] > 0, f"{path or 'home'} should hold a formula"
    assert state["typeset"] == state["formulas"], state
    assert state["errors"] == 0, state
    assert state["katexFontLoaded"], "KaTeX's fonts should load from the site"
    visible = page.evaluate(
        "Array.from(document.querySelectorAll('article .katex-html')).map(e => e.innerText).join(' ')"
        " + ' ' + document.querySelector('article').innerText.replace(/\\n/g, ' ')"
    )
    assert "\\[" not in visible and "\\(" not in visible and "$$" not in visible, "raw LaTeX left on the page"
    page.close()


@pytest.mark.browser
def test_concepts_page_renders_its_code(browser, site_url):
    page = load(browser, site_url, "concepts/")
    text = page.inner_text("article")
    assert "The decoding rule" in text
    assert "temperature=tau * (1 + sum(alpha))" in text
    assert all(image["ok"] for image in images_state(page))
    page.close()
