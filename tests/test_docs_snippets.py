"""Every Python snippet in the README and the docs runs, offline, page by page in one namespace, and every
quoted output (a fence after `<!-- output -->`) is what its command prints now.

A Python block is skipped only when the line before it is an explicit `<!-- skip-test: reason -->` comment.
Quotes are made by `python scripts/make_docs_assets.py`, which runs the same code (see its docstring).
"""

import importlib.util
import pathlib
import re
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


# Pages whose snippets train or score for seconds (measured over 2 s each): the full run only.
SLOW_PAGES = {
    "docs/how-to/token-rewards.md",
    "docs/tutorials/train-an-arm.md",
    "docs/cli.md",
    "docs/tutorials/multi-objective.md",
    "docs/how-to/preference-conditioned-arms.md",
}


def _page_parameter(page):
    name = str(page.relative_to(ROOT))
    return pytest.param(page, id=name, marks=[pytest.mark.slow] if name in SLOW_PAGES else [])


@pytest.mark.parametrize("page", [_page_parameter(p) for p in PAGES if _runs_something(p)])
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


# `<!-- skip-test: reason -->`: the reason holds at least one word and the comment is closed.
SKIP_COMMENT = re.compile(r"<!-- skip-test: (?P<reason>[^<>]*[A-Za-z]{2}[^<>]*?) -->")


def skip_comment_problems(text: str) -> list[str]:
    """What is wrong with each skip comment of a page: no reason, not closed, or not directly above its block."""
    lines = text.splitlines()
    problems = []
    for number, line in enumerate(lines):
        if not line.strip().startswith(docs_assets.SKIP_MARK):
            continue
        if not SKIP_COMMENT.fullmatch(line.strip()):
            problems.append(f"line {number + 1} is not `<!-- skip-test: <reason> -->`: {line.strip()}")
        elif number + 1 == len(lines) or not lines[number + 1].startswith("```"):
            problems.append(f"line {number + 1} is not directly above a code block, so it skips nothing")
    return problems


def test_every_skipped_snippet_says_why():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert skip_comment_problems(text) == [], page
        # Each comment skips exactly one block for the runner, and no block is skipped without a comment.
        skip_comments = [line for line in text.splitlines() if line.strip().startswith(docs_assets.SKIP_MARK)]
        assert len(skip_comments) == sum(block.skipped for block in docs_assets.blocks(text)), page


# What a reader must be told before running a skipped block: a skip reason naming one of these costs must say
# it in the page's visible text too (the comment is invisible on the site).
USER_WARNINGS = {"gpu": "GPU", "download": "download", "hub": "Hub", "minutes": "minutes"}


def hidden_warnings(text: str) -> list[str]:
    """Costs that a skip comment names (GPU, downloads, the Hub, minutes) and its section's visible text does not."""
    problems, section, in_fence = [], [], False
    for number, line in enumerate(text.splitlines()):
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            section = []  # a new section: warnings must be repeated in it
        match = SKIP_COMMENT.fullmatch(line.strip())
        if match:
            visible = " ".join(section).lower()
            for keyword, name in USER_WARNINGS.items():
                if keyword in match["reason"].lower() and keyword not in visible:
                    problems.append(f"line {number + 1}: the skip reason says {name!r}, the visible text does not")
        elif not in_fence and not line.lstrip().startswith("<!--"):
            section.append(line)
    return problems


def test_skip_reasons_a_reader_needs_are_visible():
    problems = {str(page): hidden_warnings(page.read_text(encoding="utf-8")) for page in PAGES}
    assert {page: found for page, found in problems.items() if found} == {}


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("## Run\n\n<!-- skip-test: needs a GPU -->\n```python\nx = 1\n```\n", ["line 3"]),
        ("## Run\n\nOn a GPU:\n\n<!-- skip-test: needs a GPU -->\n```python\nx = 1\n```\n", []),
        (
            "On a GPU.\n## Run\n<!-- skip-test: downloads a model, needs a GPU -->\n```python\nx = 1\n```\n",
            ["line 3"] * 2,
        ),
        ("## Run\n```bash\n# GPU\n```\n<!-- skip-test: needs a GPU -->\n```python\nx = 1\n```\n", ["line 5"]),
        ("## Run\n\n<!-- skip-test: shell command -->\n```bash\nls\n```\n", []),
    ],
    ids=["hidden", "said", "said-in-another-section", "only-in-code", "nothing-to-say"],
)
def test_hidden_warnings_are_caught(page, expected):
    assert [problem.split(":")[0] for problem in hidden_warnings(page)] == expected


@pytest.mark.parametrize(
    ("page", "problem"),
    [
        ("<!-- skip-test: needs a GPU -->\n```python\nx = 1\n```\n", None),
        ("<!-- skip-test -->\n```python\nx = 1\n```\n", "line 1 is not `<!-- skip-test: <reason> -->`"),
        ("<!-- skip-test: -->\n```python\nx = 1\n```\n", "line 1 is not `<!-- skip-test: <reason> -->`"),
        ("<!-- skip-test: needs a GPU\n```python\nx = 1\n```\n", "line 1 is not `<!-- skip-test: <reason> -->`"),
        ("Text.\n<!-- skip-test: needs a GPU -->\n\n```python\nx = 1\n```\n", "line 2 is not directly above"),
        ("<!-- skip-test: needs a GPU -->\n", "line 1 is not directly above"),
    ],
    ids=["reason", "no-colon", "empty-reason", "unclosed", "blank-line-before-block", "no-block"],
)
def test_skip_comments_without_a_reason_or_a_block_are_caught(page, problem):
    problems = skip_comment_problems(page)
    if problem is None:
        assert problems == [] and [block.skipped for block in docs_assets.blocks(page)] == [True]
    else:
        assert len(problems) == 1 and problems[0].startswith(problem), problems
