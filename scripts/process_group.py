"""Child processes in a process group of their own, killed whole on a timeout, an error or at the end.

A launcher such as `torchrun` or `accelerate launch` starts workers of its own. Killing only the launcher when a
test times out (what `subprocess.run(timeout=...)` does) leaves the workers running: a hung distributed test once
left its rank-1 process running for 43 minutes. Every test that starts a process, and `make_docs_assets.py` (which
runs the commands the docs quote), goes through this module: it starts the process in a new session and kills its
whole process group when the block ends. It lives in `scripts/`, outside the wheel, which the tests put on
`sys.path` (`conftest.py`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence

# How long a group gets to exit after SIGTERM before it is sent SIGKILL.
GRACE_SECONDS = 10


def kill_group(process: subprocess.Popen, grace: float = GRACE_SECONDS) -> None:
    """Stop `process` and every process of its group: SIGTERM, then SIGKILL after `grace` seconds.

    The group is signalled even when its leader has already exited: a launcher can die and leave workers behind.
    """
    for sent in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):  # the group is already empty
            os.killpg(process.pid, sent)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        if sent == signal.SIGTERM:
            # The leader is gone; a worker that ignores SIGTERM must not outlive the test.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        return


@contextlib.contextmanager
def started_in_own_group(
    command: Sequence[str], grace: float = GRACE_SECONDS, **popen_arguments
) -> Iterator[subprocess.Popen]:
    """Start `command` in a new process group; kill the whole group when the block ends, however it ends.

    Args:
        command (`Sequence[str]`): The program and its arguments.
        grace (`float`, *optional*, defaults to `GRACE_SECONDS`): Seconds the group gets to exit after SIGTERM
            (a server that shuts its workers down needs more) before SIGKILL.
        **popen_arguments: Passed to `subprocess.Popen` (`start_new_session` is set here).

    Examples:

    ```python
    >>> import sys
    >>> with started_in_own_group([sys.executable, "-c", "print('hi')"], stdout=subprocess.PIPE, text=True) as child:
    ...     print(child.communicate(timeout=60)[0].strip())
    hi
    ```
    """
    if "start_new_session" in popen_arguments or "process_group" in popen_arguments:
        raise TypeError("started_in_own_group sets `start_new_session` itself; do not pass it or `process_group`.")
    process = subprocess.Popen(command, start_new_session=True, **popen_arguments)
    try:
        yield process
    finally:
        kill_group(process, grace)


def run_killing_group(
    command: Sequence[str], timeout: float, check: bool = False, **popen_arguments
) -> subprocess.CompletedProcess:
    """`subprocess.run` with `capture_output=True, text=True` whose timeout kills the whole process group.

    Args:
        command (`Sequence[str]`): The program and its arguments.
        timeout (`float`): Seconds before the group is killed and `subprocess.TimeoutExpired` is raised (with the
            output so far).
        check (`bool`, *optional*, defaults to `False`): Raise `subprocess.CalledProcessError` on a non-zero exit.
        **popen_arguments: Passed to `subprocess.Popen` (e.g. `env`, `cwd`).

    Returns:
        `subprocess.CompletedProcess`: the exit status and the captured `stdout` / `stderr`.

    Examples:

    ```python
    >>> import sys
    >>> run_killing_group([sys.executable, "-c", "print(6 * 7)"], timeout=60).stdout
    '42\\n'
    >>> run_killing_group([sys.executable, "-c", "import time; time.sleep(60)"], timeout=0.5)
    Traceback (most recent call last):
    ...
    subprocess.TimeoutExpired: Command '[...]' timed out after 0.5 seconds
    ```
    """
    popen_arguments.setdefault("stdout", subprocess.PIPE)
    popen_arguments.setdefault("stderr", subprocess.PIPE)
    popen_arguments.setdefault("text", True)
    with started_in_own_group(command, **popen_arguments) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(process)
            stdout, stderr = process.communicate()
            raise subprocess.TimeoutExpired(process.args, timeout, output=stdout, stderr=stderr) from None
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if check:
        result.check_returncode()
    return result
