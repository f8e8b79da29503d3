"""The tests' child processes die with their whole process group: a launcher's workers never outlive a test."""

import os
import subprocess
import sys
import time

import pytest
from process_group import run_killing_group, started_in_own_group

# A parent that starts a worker (sleeping for ten minutes), prints the worker's process id, then does its own work.
PARENT = (
    "import subprocess, sys, time\n"
    "worker = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print(worker.pid, flush=True)\n"
    "time.sleep({parent_seconds})\n"
)


def is_running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (a killed process waits for its reaper as a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while is_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc")
def test_a_timeout_kills_the_workers_the_command_started():
    with pytest.raises(subprocess.TimeoutExpired) as timed_out:
        run_killing_group([sys.executable, "-c", PARENT.format(parent_seconds=600)], timeout=3)
    worker = int(timed_out.value.output.split()[0])
    try:
        assert wait_until_gone(worker), "the worker outlived the timed-out command"
    finally:
        if is_running(worker):
            os.kill(worker, 9)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc")
def test_workers_left_by_a_launcher_that_exited_are_killed_at_the_end():
    command = [sys.executable, "-c", PARENT.format(parent_seconds=0)]
    with started_in_own_group(command, stdout=subprocess.PIPE, text=True) as launcher:
        worker = int(launcher.stdout.readline())
        assert launcher.wait(timeout=60) == 0
        assert is_running(worker), "the worker should still run after its launcher exited"
    try:
        assert wait_until_gone(worker), "the launcher's worker outlived the block"
    finally:
        if is_running(worker):
            os.kill(worker, 9)


def test_a_completed_command_returns_its_output_and_status():
    result = run_killing_group([sys.executable, "-c", "import sys; print('out'); sys.exit(3)"], timeout=60)
    assert (result.returncode, result.stdout) == (3, "out\n")
    with pytest.raises(subprocess.CalledProcessError):
        run_killing_group([sys.executable, "-c", "import sys; sys.exit(3)"], timeout=60, check=True)


def test_the_session_is_not_set_twice():
    with pytest.raises(TypeError, match="start_new_session"):
        run_killing_group([sys.executable, "-c", "pass"], timeout=60, start_new_session=False)
