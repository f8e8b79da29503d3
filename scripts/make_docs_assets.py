"""Make the docs' quoted outputs and figures by running the commands the pages show.

In a Markdown page (README.md or docs/), a code fence preceded by the line `<!-- output -->` quotes what the
code fence before it prints:

* a Python snippet runs in order with the page's earlier Python snippets, in one namespace, and its standard
  output is quoted;
* a bash block runs with `bash -euo pipefail` from a working folder (the repository root here, so a figure it
  writes with `--png docs/assets/...` lands in the docs), and its standard output is quoted.

Usage, from the repository root:

    python scripts/make_docs_assets.py            # rerun every page's commands, rewrite quotes and figures
    python scripts/make_docs_assets.py --check    # only report quotes that differ from what is printed now
    python scripts/make_docs_assets.py docs/how-to/token-rewards.md   # only the pages named

`tests/test_docs_snippets.py` runs the same pages in a temporary folder and fails when a quote is out of date.
The quality benchmark's figure (`docs/assets/quality_front.png`) is made by `benchmarks/bench_quality.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import pathlib
import re
import sys

from process_group import run_killing_group

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUTPUT_MARK = "<!-- output -->"
SKIP_MARK = "<!-- skip-test"
FENCE = re.compile(r"^(?P<before>[^\n]*)\n```(?P<lang>[^\n]*)\n(?P<body>.*?)\n```$", re.DOTALL | re.MULTILINE)


@dataclasses.dataclass
class Block:
    """One fenced code block of a page."""

    lang: str
    body: str
    before: str
    start: int
    end: int

    @property
    def skipped(self) -> bool:
        return self.before.strip().startswith(SKIP_MARK)

    @property
    def is_output(self) -> bool:
        return self.before.strip() == OUTPUT_MARK


@dataclasses.dataclass
class Quote:
    """An output block, what it says, and what its command printed in this run."""

    block: Block
    printed: str

    @property
    def up_to_date(self) -> bool:
        return self.block.body.rstrip() == self.printed.rstrip()


def pages() -> list[pathlib.Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(text: str) -> list[Block]:
    # A leading newline lets the first fence of a file have a (blank) line before it.
    found = []
    for match in FENCE.finditer("\n" + text):
        lang = match["lang"].strip().split(" ")[0]
        found.append(Block(lang, match["body"], match["before"], match.start("body") - 1, match.end("body") - 1))
    return found


def python_snippets(text: str) -> list[Block]:
    return [block for block in blocks(text) if block.lang in ("python", "py") and not block.skipped]


def _run_python(block: Block, namespace: dict, name: str) -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block.body, name, "exec"), namespace)
    return printed.getvalue()


def _run_bash(block: Block, workdir: pathlib.Path) -> str:
    # The whole process group is killed past the timeout: a hung command must not outlive the docs run.
    result = run_killing_group(["bash", "-euo", "pipefail", "-c", block.body], timeout=600, cwd=workdir)
    if result.returncode != 0:
        raise RuntimeError(f"command failed ({result.returncode}):\n{block.body}\n{result.stderr[-3000:]}")
    return result.stdout


def run_page(page: pathlib.Path, workdir: pathlib.Path) -> list[Quote]:
    """Run a page's Python snippets (all of them) and every command whose output it quotes, from `workdir`."""
    text = page.read_text(encoding="utf-8")
    namespace: dict = {"__name__": "__docs__"}
    quotes, last_printed, previous = [], None, None
    previous_dir = os.getcwd()
    os.chdir(workdir)
    try:
        page_blocks = blocks(text)
        for index, block in enumerate(page_blocks):
            following = page_blocks[index + 1] if index + 1 < len(page_blocks) else None
            quoted = following is not None and following.is_output
            if block.is_output:
                if previous is None or last_printed is None:
                    raise ValueError(f"{page}: an {OUTPUT_MARK} block must follow the code block it quotes.")
                quotes.append(Quote(block, last_printed))
                last_printed = None
            elif block.lang in ("python", "py") and not block.skipped:
                last_printed = _run_python(block, namespace, f"{page.name}[block {index}]")
            elif block.lang in ("bash", "sh") and quoted:
                last_printed = _run_bash(block, workdir)
            else:
                last_printed = None
            previous = block
    finally:
        os.chdir(previous_dir)
    return quotes


def rewrite(page: pathlib.Path, quotes: list[Quote]) -> bool:
    """Write what the commands printed into the page's output blocks; return whether the page changed."""
    text = page.read_text(encoding="utf-8")
    for quote in sorted(quotes, key=lambda quote: quote.block.start, reverse=True):
        text = text[: quote.block.start] + quote.printed.rstrip() + text[quote.block.end :]
    changed = text != page.read_text(encoding="utf-8")
    if changed:
        page.write_text(text, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", type=pathlib.Path, help="Pages to rerun (default: every page).")
    parser.add_argument("--check", action="store_true", help="Report out-of-date quotes; change nothing.")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import matplotlib
    import torch

    matplotlib.use("Agg")
    torch.set_num_threads(1)  # as the test suite runs, so both print the same numbers
    stale = []
    for page in [path.resolve() for path in args.pages] or pages():
        if OUTPUT_MARK not in page.read_text(encoding="utf-8"):
            continue
        quotes = run_page(page, ROOT)
        name = page.relative_to(ROOT)
        outdated = [quote for quote in quotes if not quote.up_to_date]
        if args.check:
            stale += [f"{name}: quote at offset {quote.block.start} differs" for quote in outdated]
        elif rewrite(page, quotes):
            print(f"updated {name} ({len(outdated)} of {len(quotes)} quotes)")
        else:
            print(f"{name}: {len(quotes)} quotes up to date")
    print("\n".join(stale) or "all quotes up to date" if args.check else "done")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
