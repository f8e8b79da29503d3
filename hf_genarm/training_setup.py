"""What a training run sets up around `ARMTrainer`: the LoRA configuration and the distributed launch.

`hf-genarm train` and a Python training script share these, so that the command line is a thin face over them.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["LORA_DEFAULTS", "check_distributed_launch", "leave_process_group", "lora_config"]

LORA_DEFAULTS = {"r": 16, "lora_alpha": 32.0, "lora_dropout": 0.05}
"""LoRA settings used when they are not given: TRL's `ModelConfig` defaults."""

# Where launchers announce how many processes they started: torchrun / accelerate, then MPI implementations.
_WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")

_FINISHED_BARRIERS: list[Any] = []
"""The last barrier of each closed process group, kept alive on purpose (see `leave_process_group`)."""


def lora_config(
    r: int | None = None,
    lora_alpha: float | None = None,
    lora_dropout: float | None = None,
    target_modules: list[str] | None = None,
) -> Any:
    """A causal-LM `peft.LoraConfig` for an autoregressive reward model, with TRL's defaults for what is not given.

    Args:
        r (`int`, *optional*, defaults to `16`): LoRA rank.
        lora_alpha (`float`, *optional*, defaults to `32.0`): LoRA scaling alpha.
        lora_dropout (`float`, *optional*, defaults to `0.05`): LoRA dropout.
        target_modules (`list[str]`, *optional*): Module names to adapt (PEFT's choice for the architecture when
            omitted).

    Returns:
        `peft.LoraConfig`: the configuration, for `ARMTrainer(peft_config=...)`.

    Raises:
        ValueError: when PEFT refuses a value (its message names it).

    Examples:

    ```python
    >>> from hf_genarm.training_setup import lora_config
    >>> config = lora_config(r=4, target_modules=["c_attn"])
    >>> config.r, config.lora_alpha, config.task_type
    (4, 32.0, 'CAUSAL_LM')
    ```
    """
    from peft import LoraConfig

    given = {"r": r, "lora_alpha": lora_alpha, "lora_dropout": lora_dropout}
    settings = {name: LORA_DEFAULTS[name] if value is None else value for name, value in given.items()}
    return LoraConfig(task_type="CAUSAL_LM", target_modules=target_modules, **settings)


def check_distributed_launch(world_size: int, environ: Any = None) -> None:
    """Refuse a launch whose processes would each train alone on all the data and save into the same folder.

    Args:
        world_size (`int`): The processes training joined (`TrainingArguments.world_size`).
        environ (`Mapping[str, str]`, *optional*): The environment the launcher set; defaults to `os.environ`.

    Raises:
        ValueError: when a launcher started several processes that no backend joined, or when `accelerate launch
            --cpu --num_processes N` started a single process; the message says what to run instead.

    Examples:

    ```python
    >>> from hf_genarm.training_setup import check_distributed_launch
    >>> check_distributed_launch(world_size=2, environ={"WORLD_SIZE": "2"})  # joined: fine
    ```
    """
    environ = os.environ if environ is None else environ
    announced = [int(environ[name]) for name in _WORLD_SIZE_VARIABLES if name in environ]
    if announced:
        launched = announced[0]
        if launched > 1 and world_size != launched:
            raise ValueError(
                f"the launcher started {launched} processes but no accelerator backend joined them, so each would "
                "train alone on all the data and save into the same folder; add --use_cpu (`use_cpu=True`) to train "
                "on CPU processes over gloo, or start one process per GPU"
            )
        return
    # `accelerate launch --cpu --num_processes N` (N > 1) starts one process without MPI, and says so only by
    # setting MASTER_ADDR for the processes it did not start.
    accelerate_cpu = environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")
    if accelerate_cpu and "MASTER_ADDR" in environ:
        raise ValueError(
            "`accelerate launch --cpu --num_processes N` starts a single process (accelerate starts several CPU "
            "processes only through MPI); for N CPU processes run `accelerate launch --multi_gpu --num_processes N "
            "-m hf_genarm.cli train ... --use_cpu` or `torchrun --nproc_per_node N -m hf_genarm.cli train ... "
            "--use_cpu`"
        )


def leave_process_group() -> None:
    """Close the distributed process group of a `torchrun` / `accelerate launch` run before the process exits.

    A process that exits with the group still open can abort at interpreter shutdown ("terminate called without
    an active exception") while gloo's threads are still running, and the launcher then reports the run as
    failed. Does nothing outside a distributed run.

    Examples:

    ```python
    >>> from hf_genarm.training_setup import leave_process_group
    >>> leave_process_group()  # no process group: nothing to do
    ```
    """
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        barrier = torch.distributed.barrier(async_op=True)
        barrier.wait()
        # gloo's worker thread drops its reference to a finished work item (and to the earlier work it waited on,
        # which holds Python tensors) just after `wait()` returns. Dropped last there, it needs the GIL; if the
        # main thread meanwhile holds the GIL while deallocating DDP's reducer, whose process-group destructor
        # joins that worker thread, both wait forever (seen as a rank hanging after its run saved). Keeping the
        # work alive until the interpreter exits makes this thread, never the worker, drop it last.
        _FINISHED_BARRIERS.append(barrier)
        torch.distributed.destroy_process_group()
