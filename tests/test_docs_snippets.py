"""Every Python snippet in the README and the docs runs, offline, page by page in one namespace.

A fenced block is skipped only when the line before it is an explicit `<!-- skip-test: reason -->` comment.
"""

import pathlib
import re

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"(?P<before>[^\n]*)\n```(?P<lang>[^\n]*)\n(?P<body>.*?)\n```", re.DOTALL)


def python_snippets(page: pathlib.Path) -> list[str]:
    snippets = []
    for match in FENCE.finditer("\n" + page.read_text(encoding="utf-8")):
        if match["lang"].strip().split(" ")[0] not in ("python", "py"):
            continue
        if match["before"].strip().startswith("<!-- skip-test"):
            continue
        snippets.append(match["body"])
    return snippets


@pytest.mark.parametrize("page", [p for p in PAGES if python_snippets(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_page_snippets_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for index, snippet in enumerate(python_snippets(page)):
        code = compile(snippet, f"{page.name}[snippet {index}]", "exec")
        exec(code, namespace)


def test_every_skipped_snippet_says_why():
    for page in PAGES:
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("<!-- skip-test"):
                assert ":" in line, f"{page}: a skipped snippet must give its reason: {line}"
