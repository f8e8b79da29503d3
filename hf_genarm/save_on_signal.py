"""Stop training cleanly on Ctrl-C or SIGTERM: the step in progress ends, a checkpoint is saved, training stops.

Without it, an interrupted `Trainer.train` loses every step since the last `save_steps` checkpoint: with
`save_steps=500` a run stopped at step 499 leaves nothing. A job scheduler's SIGTERM (Slurm, Kubernetes, `timeout`)
gets the same treatment; a second signal interrupts at once, for a user who does not want to wait for the save.
"""

from __future__ import annotations

import signal
from typing import Any

from transformers import TrainerCallback

__all__ = ["SaveOnSignalCallback"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SaveOnSignalCallback(TrainerCallback):
    r"""Turn SIGINT (Ctrl-C) and SIGTERM into "save a checkpoint, then stop" at the end of the current step.

    The signal handlers are installed when training begins and the previous ones restored when it ends (or at
    the first signal, so that a second Ctrl-C interrupts at once); a caller whose training may end with an
    exception (which skips `on_train_end`) calls `uninstall()` afterwards. After training, `received` names the signal
    that stopped it (`None` when training ran to its end), so that a caller can save the final model and exit
    with the conventional status `128 + signal number`. Under `torchrun` every process receives the signal; the
    processes agree on the step at which they stop (a max-reduction of the flag each step), so their checkpoint
    is the same step.

    Only the main thread can install signal handlers; elsewhere the callback does nothing.

    Examples:

    ```python
    >>> from hf_genarm.save_on_signal import SaveOnSignalCallback
    >>> callback = SaveOnSignalCallback()  # ARMTrainer(..., callbacks=[callback])
    >>> callback.received is None
    True
    ```
    """

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def _handle(self, number: int, frame: Any) -> None:
        self.received = signal.Signals(number)
        # A second signal takes the default way out (KeyboardInterrupt or termination) without waiting for the save.
        self.uninstall()

    def uninstall(self) -> None:
        """Put back the signal handlers that were there before training began (nothing to do if already done)."""
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.received = None
        try:
            for number in _SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        except ValueError:  # not the main thread: leave the process's handlers alone
            self.uninstall()

    def _stop_requested(self, args: Any) -> bool:
        import torch.distributed

        requested = self.received is not None
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return requested
        import torch

        flag = torch.tensor([int(requested)], device=args.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() and self.received is None:
            self.received = signal.SIGTERM  # another process was signalled: stop with it
        return bool(flag.item())

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self._stop_requested(args):
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.uninstall()
