"""Write constraints/dev.txt: the installed versions of the `dev` and `docs` extras and everything they pull in.

CI installs with `pip install -e ".[dev]" -c constraints/dev.txt`, so the test and docs toolchain (pytest, ruff,
mkdocs, mkdocstrings, griffe, playwright, ...) is the one the project was last checked with, while the package's
own dependency ranges in pyproject.toml stay open for users. After upgrading the toolchain on purpose and
checking that `bash .ci/run` passes, refresh the file from that environment:

    python scripts/freeze_dev_constraints.py
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXTRAS = ("dev", "docs")
# Installed before the package, from the channel that fits the machine (CPU or CUDA wheels): not pinned here.
NOT_PINNED = {"hf-genarm", "torch", "triton", "pip", "setuptools", "wheel"}


def _requirements(distribution: importlib.metadata.Distribution, extras: set[str]) -> list[Requirement]:
    wanted = []
    for line in distribution.requires or []:
        requirement = Requirement(line)
        environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
        if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
            wanted.append(requirement)
    return wanted


def toolchain_closure() -> dict[str, str]:
    """Name -> installed version of every distribution the `dev`/`docs` extras need, transitively."""
    package = importlib.metadata.distribution("hf-genarm")
    pending = [req for req in _requirements(package, set(EXTRAS)) if req.marker is not None]
    pinned: dict[str, str] = {}
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in pinned or name in NOT_PINNED or name.startswith("nvidia-"):
            continue
        try:
            distribution = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional dependency for another platform or Python
        pinned[name] = distribution.version
        pending += _requirements(distribution, set(requirement.extras))
    return pinned


def main() -> int:
    pinned = toolchain_closure()
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    lines = [
        "# Versions of the dev/docs toolchain (the `dev` and `docs` extras and their dependencies), as checked by",
        f"# .ci/run on Python {python}. Made by `python scripts/freeze_dev_constraints.py`; used by .ci/run as",
        '# `pip install -e ".[dev]" -c constraints/dev.txt`. Users install without it: pyproject.toml keeps ranges.',
        *(f"{name}=={version}" for name, version in sorted(pinned.items())),
    ]
    target = ROOT / "constraints" / "dev.txt"
    target.parent.mkdir(exist_ok=True)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {target.relative_to(ROOT)} ({len(pinned)} pins)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
