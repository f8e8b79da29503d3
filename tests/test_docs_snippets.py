"""Every Python snippet in the README and the docs runs, offline, page by page in one namespace, and every
quoted output (a fence after `<!-- output -->`) is what its command prints now.

A Python block is skipped only when the line before it is an explicit `<!-- skip-test: reason -->` comment.
Quotes are made by `python scripts/make_docs_assets.py`, which runs the same code (see its docstring).
"""

import importlib.util
import pathlib
import sys

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_docs_assets", ROOT / "scripts" / "make_docs_assets.py")
docs_assets = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = docs_assets  # dataclasses look their module up while the class is built
_spec.loader.exec_module(docs_assets)

PAGES = docs_assets.pages()


def _runs_something(page):
    text = page.read_text(encoding="utf-8")
    return bool(docs_assets.python_snippets(text)) or docs_assets.OUTPUT_MARK in text


@pytest.mark.parametrize("page", [p for p in PAGES if _runs_something(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_page_snippets_run_and_print_what_the_page_quotes(page, tmp_path):
    (tmp_path / "docs" / "assets").mkdir(parents=True)  # where the pages' commands write their figures
    quotes = docs_assets.run_page(page, tmp_path)
    for quote in quotes:
        assert quote.block.body.rstrip() == quote.printed.rstrip(), (
            f"{page.relative_to(ROOT)}: a quoted output is out of date; run `python scripts/make_docs_assets.py`."
        )


def test_quoted_outputs_are_checked_where_the_docs_quote_numbers():
    quoting = {str(p.relative_to(ROOT)) for p in PAGES if docs_assets.OUTPUT_MARK in p.read_text(encoding="utf-8")}
    assert {"README.md", "docs/index.md", "docs/how-to/token-rewards.md"} <= quoting


def test_a_stale_quote_is_detected(tmp_path):
    page = tmp_path / "page.md"
    page.write_text('# Page\n\n```python\nprint("now", 2 + 2)\n```\n\n<!-- output -->\n```text\nnow 5\n```\n')
    (quote,) = docs_assets.run_page(page, tmp_path)
    assert quote.printed == "now 4\n" and not quote.up_to_date
    assert docs_assets.rewrite(page, [quote])
    (quote,) = docs_assets.run_page(page, tmp_path)
    assert quote.up_to_date and "```text\nnow 4\n```" in page.read_text()


def test_a_quoted_bash_command_runs_from_the_working_folder(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```bash\necho hi > made.txt && cat made.txt\n```\n<!-- output -->\n```text\nhi\n```\n")
    (quote,) = docs_assets.run_page(page, tmp_path)
    assert quote.up_to_date and (tmp_path / "made.txt").read_text() == "hi\n"


def test_every_skipped_snippet_says_why():
    for page in PAGES:
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("<!-- skip-test"):
                assert ":" in line, f"{page}: a skipped snippet must give its reason: {line}"
