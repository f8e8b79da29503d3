"""What a saved reward-model folder holds, writing it all at once, and checking it before it is read or uploaded.

A folder holds one model: a full causal-LM checkpoint (`config.json` + `model.safetensors` or its shards) or a PEFT
adapter (`adapter_config.json` + `adapter_model.safetensors`), beside `genarm_config.json`, a card and the
tokenizer. A `genarm_config.json` marks the model files next to it as hf-genarm's own: a later save may replace
them. Model files without it, and weights in any format hf-genarm never writes, belong to someone else and are
only replaced when the caller asks (`overwrite=True`). Moving a folder to and from the Hub is
`hf_genarm._hub_transfer`'s; which tokenizer a folder may hold is `hf_genarm.vocab`'s (the tokenizer policy).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable

from ._atomic_folder import LEGACY_STAGING_PREFIX, check_folder_writable, replace_folder
from .configuration import GENARM_CONFIG_NAME, RewardModelMetadata
from .vocab import TOKENIZER_FILES, check_folder_tokenizer, checked_tokenizer_fingerprint, tokenizer_file_names

FULL_MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json")
FULL_MODEL_SHARDS = "model-*-of-*.safetensors"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# Written by `transformers.Trainer` beside the model (its arguments; in checkpoint-* folders also the optimizer,
# scheduler, scaler and per-process RNG states, and under FSDP the sharded model and optimizer it resumes from):
# pickles, so never uploaded, and no model a loader reads.
TRAINER_STATE_FILES = (
    "training_args.bin",
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state*.pth",
    "optimizer*.bin",
    "pytorch_model_fsdp*.bin",
)
# Weights of other formats and frameworks (pickles, GGUF/GGML, ONNX and its external data, TensorFlow/Keras, Flax,
# TFLite, Core ML, PaddlePaddle, NumPy archives, TensorRT engines, rust-bert), matched case-insensitively.
_FOREIGN_WEIGHT_SUFFIXES = (
    ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".h5", ".hdf5", ".keras", ".msgpack",
    ".safetensors", ".gguf", ".ggml", ".onnx", ".onnx_data", ".onnx.data", ".ort", ".tflite", ".pb", ".mlmodel",
    ".pdparams", ".npz", ".engine", ".plan", ".ot",
)  # fmt: skip


def _top_level_files(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(name for name in os.listdir(folder) if os.path.isfile(os.path.join(folder, name)))


def full_model_files(names: list[str]) -> list[str]:
    """The names among `names` that belong to a full causal-LM checkpoint as transformers saves it."""
    return [name for name in names if name in FULL_MODEL_FILES or fnmatch.fnmatch(name, FULL_MODEL_SHARDS)]


def adapter_files(names: list[str]) -> list[str]:
    """The names among `names` that belong to a PEFT adapter as PEFT saves it."""
    return [name for name in names if name in ADAPTER_FILES]


def trainer_state_files(names: list[str]) -> list[str]:
    """The names among `names` that `transformers.Trainer` writes beside a model: training state, not weights."""
    return [name for name in names if any(fnmatch.fnmatch(name, pattern) for pattern in TRAINER_STATE_FILES)]


def foreign_weight_files(names: list[str]) -> list[str]:
    """Weights hf-genarm never writes (pickles, other frameworks, other safetensors names)."""
    ours = set(full_model_files(names)) | set(adapter_files(names)) | set(trainer_state_files(names))
    return [name for name in names if name.lower().endswith(_FOREIGN_WEIGHT_SUFFIXES) and name not in ours]


def holds_genarm_metadata(folder: str) -> bool:
    """Whether `folder` holds a valid `genarm_config.json` (so its model files are hf-genarm's own)."""
    path = os.path.join(folder, GENARM_CONFIG_NAME)
    if not os.path.isfile(path):
        return False
    try:
        RewardModelMetadata.from_json_file(path)
    except ValueError:
        return False
    return True


def check_one_model(folder: str, names: list[str] | None = None) -> None:
    """Refuse a folder that holds both a full checkpoint and a PEFT adapter, naming the files of each.

    Raises:
        ValueError: Naming both sets of files and how to proceed.
    """
    names = _top_level_files(folder) if names is None else names
    full = [name for name in full_model_files(names) if name != "generation_config.json"]
    adapter = adapter_files(names)
    if adapter and any(name != "config.json" for name in full):
        raise ValueError(
            f"{folder} holds two models: a full checkpoint ({', '.join(full)}) and a PEFT adapter "
            f"({', '.join(adapter)}), so which one loads would be a guess (an earlier save into the same folder "
            "likely left one behind). Move the one you do not want to another folder, or save the reward model "
            "again with hf-genarm, which leaves exactly one."
        )


def _is_one_of(folder: str, others: tuple[str, ...]) -> bool:
    return os.path.isdir(folder) and any(os.path.isdir(other) and os.path.samefile(folder, other) for other in others)


def _files_to_replace(
    folder: str, names: list[str], overwrite: bool, overwrite_option: str, base_model_folders: tuple[str, ...] = ()
) -> list[str]:
    """The model files a new save must remove, after refusing files hf-genarm did not write unless `overwrite`.

    An adapter is refused, whatever `overwrite`, in the folder holding its own base model: the save would remove
    the very weights the adapter records as its base, losing the user's model and leaving an adapter that cannot
    load.
    """
    if _is_one_of(folder, base_model_folders):
        raise ValueError(
            f"{folder} holds the base model of the adapter being saved; saving the adapter there would remove the "
            "weights it needs (the base model would be lost). Save the adapter into another folder, or merge it "
            "first (`AutoregressiveRewardModel.merge_adapter()`) to save a full model."
        )
    model_files = full_model_files(names) + adapter_files(names)
    foreign = foreign_weight_files(names)
    if not holds_genarm_metadata(folder):
        foreign = model_files + foreign
    if foreign and not overwrite:
        raise ValueError(
            f"{folder} already holds model files that hf-genarm did not write ({', '.join(sorted(foreign))}); saving "
            f"there would mix two models. Save into another folder, or pass {overwrite_option} to replace them."
        )
    return sorted(set(model_files) | set(foreign_weight_files(names)))


def check_folder_takes_a_model(
    folder: str | os.PathLike,
    *,
    overwrite: bool = False,
    overwrite_option: str = "`overwrite=True`",
    base_model_folders: tuple[str, ...] = (),
) -> None:
    """Refuse, before any work, a folder that `write_folder_atomically` would refuse (with the same error).

    Raises:
        ValueError: When `folder` holds model files hf-genarm did not write and `overwrite` is false, or when it
            is one of `base_model_folders`, the folders of the base model of the adapter to be saved.
    """
    folder = os.fspath(folder)
    _files_to_replace(folder, _top_level_files(folder), overwrite, overwrite_option, base_model_folders)


def _check_kept_tokenizer(folder: str, names: list[str], recorded_tokenizer: dict | None) -> None:
    """Refuse a save without a tokenizer into a folder whose tokenizer files would then pair with another model.

    The tokenizer files stay (a save only replaces what it writes), so they must be the tokenizer the new reward
    model records; when it records none, files left by the model saved there before belong to that model.
    """
    if not any(name in names for name in TOKENIZER_FILES):
        return
    fix = (
        "Pass `tokenizer=` with the reward model's own tokenizer (it replaces those files), remove the tokenizer "
        "files from the folder, or save into another folder."
    )
    if recorded_tokenizer is None:
        held_a_model = full_model_files(names) or adapter_files(names) or GENARM_CONFIG_NAME in names
        if held_a_model:
            raise ValueError(
                f"{folder} holds the tokenizer files of the model saved there before, and the reward model being "
                f"saved records no tokenizer: saving without `tokenizer=` would pair them silently. {fix}"
            )
        return
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as error:  # any unreadable tokenizer: it cannot be shown to be the recorded one
        raise ValueError(
            f"{folder} holds tokenizer files that cannot be read ({error}), so they cannot be checked against the "
            f"tokenizer the reward model records. {fix}"
        ) from error
    checked_tokenizer_fingerprint(
        tokenizer, recorded_tokenizer, f"The tokenizer saved in {folder}", "the reward model being saved", fix=fix
    )


def write_folder_atomically(
    folder: str | os.PathLike,
    write: Callable[[str], None],
    *,
    is_adapter: bool,
    overwrite: bool = False,
    overwrite_option: str = "`overwrite=True`",
    base_model_folders: tuple[str, ...] = (),
    writes_tokenizer: bool = True,
    recorded_tokenizer: dict | None = None,
) -> None:
    """Write a reward model into `folder` through `write(staging)`, leaving exactly one model there, all at once.

    `write` saves into an empty staging folder beside `folder`; what `folder` held besides the model files the new
    save replaces (the user's notes, data, checkpoint folders) is carried over, and the staging folder then takes
    the place of `folder` in one step (see `hf_genarm._atomic_folder`): every reader, this package's or another
    tool's, finds the earlier save or the new one, never a mix, even when the save is killed. Model files of an
    earlier hf-genarm save that the new save does not write (the other kind of checkpoint, stale shards or index)
    and, when the new save writes a tokenizer, the earlier tokenizer's files are not carried over. Concurrent saves
    into `folder` run one after the other.

    Args:
        folder (`str` or `os.PathLike`): Destination (created if missing).
        write (`Callable[[str], None]`): Saves the model, metadata, card and tokenizer into the given folder.
        is_adapter (`bool`): Whether the new checkpoint is a PEFT adapter (checked against what `write` wrote).
        overwrite (`bool`, *optional*, defaults to `False`): Replace model files hf-genarm did not write.
        overwrite_option (`str`, *optional*, defaults to ``"`overwrite=True`"``): How the caller's user asks for
            `overwrite`, named in the error.
        base_model_folders (`tuple[str, ...]`, *optional*): For an adapter, the local folders of its base model (the
            one it records, the one it was put on), which `folder` must not be.
        writes_tokenizer (`bool`, *optional*, defaults to `True`): Whether `write` saves a tokenizer; when not,
            tokenizer files already in `folder` must be the recorded tokenizer.
        recorded_tokenizer (`dict`, *optional*): The fingerprint of the tokenizer the new reward model records.

    Raises:
        ValueError: When `folder` (or the folder holding it) is not writable, holds model files hf-genarm did not
            write and `overwrite` is false, is one of `base_model_folders`, or holds tokenizer files that the new
            save would pair with a model they do not belong to.
    """
    folder = os.path.abspath(os.fspath(folder))
    if os.path.islink(folder) and os.path.isdir(folder):
        folder = os.path.realpath(folder)  # replace the folder the link points to, and keep the link
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"`save_directory` ({folder}) is a file; pass a folder.")
    check_folder_writable(folder, "`save_directory`")
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    to_replace: list[str] = []

    def checked_write(staging: str) -> None:
        # Under the save lock: the folder is as the last save left it.
        names = _top_level_files(folder)
        to_replace[:] = _files_to_replace(folder, names, overwrite, overwrite_option, base_model_folders)
        if not writes_tokenizer:
            _check_kept_tokenizer(folder, names, recorded_tokenizer)
        write(staging)
        written = _top_level_files(staging)
        kind_written = adapter_files(written) if is_adapter else full_model_files(written)
        if not kind_written:
            raise RuntimeError(f"Saving wrote no {'adapter' if is_adapter else 'model'} files into {folder}.")

    def dropped(written: list[str]) -> set[str]:
        names = os.listdir(folder)
        legacy_staging = {name for name in names if name.startswith(LEGACY_STAGING_PREFIX)}
        tokenizer_files = set(tokenizer_file_names(names)) if tokenizer_file_names(written) else set()
        return set(to_replace) | legacy_staging | tokenizer_files

    replace_folder(folder, checked_write, dropped)


def check_saved_reward_model(folder: str | os.PathLike) -> tuple[RewardModelMetadata, bool]:
    """Check a folder written by `AutoregressiveRewardModel.save_pretrained` (or `ARMTrainer`) without loading it.

    Args:
        folder (`str` or `os.PathLike`): The saved reward model.

    Returns:
        `tuple[RewardModelMetadata, bool]`: its metadata, and whether the checkpoint is a PEFT adapter.

    Raises:
        ValueError: When the folder is missing, has no valid `genarm_config.json`, holds no model or two,
            holds weights other than safetensors, or tokenizer files that contradict the recorded tokenizer.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"{folder} is not a folder; pass the folder a reward model was saved into.")
    metadata_path = os.path.join(folder, GENARM_CONFIG_NAME)
    if os.path.exists(metadata_path) and not os.path.isfile(metadata_path):
        raise ValueError(f"{metadata_path} is not a file (a folder or a special file); re-save the reward model.")
    if not os.path.isfile(metadata_path):
        raise ValueError(
            f"{folder} has no {GENARM_CONFIG_NAME}, so it was not saved as a reward model; load it with "
            "`AutoregressiveRewardModel.from_pretrained(folder, beta_r=...)` and push that."
        )
    metadata = RewardModelMetadata.from_json_file(metadata_path)
    names = _top_level_files(folder)
    check_one_model(folder, names)
    foreign = foreign_weight_files(names)
    if foreign:
        raise ValueError(
            f"{folder} holds weights that are not safetensors written by hf-genarm ({', '.join(foreign)}); "
            "hf-genarm only shares safetensors checkpoints. Remove them, or re-save the reward model."
        )
    check_folder_tokenizer(folder)
    is_adapter = bool(adapter_files(names))
    weights = ["adapter_model.safetensors"] if is_adapter else ["model.safetensors", "model.safetensors.index.json"]
    if not any(name in names for name in weights) or (not is_adapter and "config.json" not in names):
        raise ValueError(
            f"{folder} holds no complete model (expected config.json with model.safetensors or its shards, or "
            "adapter_config.json with adapter_model.safetensors)."
        )
    return metadata, is_adapter


def files_to_upload(folder: str) -> list[str]:
    """The files of a saved reward-model folder that belong on the Hub: top-level, not hidden, no trainer state."""
    names = _top_level_files(folder)
    trainer_state = set(trainer_state_files(names))
    return [name for name in names if not name.startswith(".") and name not in trainer_state]
