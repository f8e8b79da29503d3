"""Saves replace a reward-model folder all at once: killed saves and concurrent saves never leave a mix (issue 23).

Saves run in subprocesses killed with SIGKILL at chosen points of `hf_genarm._atomic_folder` (no `finally` runs,
as under a real kill), then the folder is read by this package and by plain transformers.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from process_group import kill_group
from transformers import AutoModelForCausalLM

from hf_genarm import AutoregressiveRewardModel
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and fcntl locks are POSIX")

# Saves the reward model of `seed` (beta_r = seed / 10) into `folder`; `kill_at` names a function of
# `hf_genarm._atomic_folder` before which ("before:<name>") or after which ("after:<name>") the process kills itself
# ("during:write": while writing the new model);
# `wait_for` makes the save pause, holding the lock, until that file exists.
_SAVE = textwrap.dedent(
    """
    import os, signal, sys, time
    import hf_genarm._atomic_folder as atomic
    from hf_genarm import AutoregressiveRewardModel
    from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer

    folder, seed, kill_at, wait_for, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    if kill_at == "during:write":  # the staging folder holds the weights, not yet genarm_config.json
        from hf_genarm.configuration import RewardModelMetadata

        RewardModelMetadata.to_json_file = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
    elif kill_at != "-":
        when, name = kill_at.split(":")
        original = getattr(atomic, name)

        def killing(*args, **kwargs):
            if when == "after":
                original(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)

        setattr(atomic, name, killing)
    if wait_for != "-":
        original_carry_over = atomic._carry_over

        def pausing(*args, **kwargs):
            open(ready, "w").close()
            while not os.path.exists(wait_for):
                time.sleep(0.05)
            time.sleep(1.0)
            original_carry_over(*args, **kwargs)

        atomic._carry_over = pausing
    elif ready != "-":
        open(ready, "w").close()
    tokenizer = make_tiny_tokenizer()
    model = AutoregressiveRewardModel(make_tiny_causal_lm(seed=seed), beta_r=seed / 10, tokenizer=tokenizer)
    model.save_pretrained(folder, tokenizer=tokenizer)
    """
)


def _start_save(folder, seed, kill_at="-", wait_for="-", ready="-"):
    return subprocess.Popen(
        [sys.executable, "-c", _SAVE, str(folder), str(seed), kill_at, str(wait_for), str(ready)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _finish(process, timeout=240):
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        process.communicate()
        raise
    return process.returncode, output


def _save_in_process(folder, seed):
    tokenizer = make_tiny_tokenizer()
    model = AutoregressiveRewardModel(make_tiny_causal_lm(seed=seed), beta_r=seed / 10, tokenizer=tokenizer)
    model.save_pretrained(folder, tokenizer=tokenizer)


def _which_model(folder, seeds):
    """The seed whose model `folder` holds, read by hf-genarm and by plain transformers, which must agree."""
    reward_model = AutoregressiveRewardModel.from_pretrained(folder)
    plain = AutoModelForCausalLM.from_pretrained(folder)
    found = []
    for seed in seeds:
        reference = make_tiny_causal_lm(seed=seed).state_dict()
        matches = [
            all(torch.equal(tensor, reference[name]) for name, tensor in loaded.state_dict().items())
            for loaded in (reward_model.model, plain)
        ]
        if all(matches):
            found.append(seed)
        else:
            assert not any(matches), f"hf-genarm and transformers read different weights in {folder}"
    assert len(found) == 1, f"{folder} holds the weights of none of the models {seeds} (a mix)"
    assert reward_model.beta_r == pytest.approx(found[0] / 10), "genarm_config.json of one save, weights of another"
    return found[0]


def _siblings(folder):
    return sorted(name for name in os.listdir(folder.parent) if name.startswith(f".{folder.name}."))


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_at",
    [
        "during:write",  # half of the new model written to the staging folder
        "before:_carry_over",  # the new model written to the staging folder, the user's files not carried yet
        "before:_exchange",  # the staging folder complete, the swap not done
        "after:_exchange",  # the swap done, the old content not removed
    ],
)
def test_a_save_killed_at_any_point_leaves_the_old_or_the_new_model_and_the_next_save_cleans_up(tmp_path, kill_at):
    folder = tmp_path / "arm"
    _save_in_process(folder, seed=1)
    (folder / "notes.txt").write_text("mine")
    code, output = _finish(_start_save(folder, seed=2, kill_at=kill_at))
    assert code == -signal.SIGKILL, output
    expected = 2 if kill_at == "after:_exchange" else 1
    assert _which_model(folder, (1, 2)) == expected
    assert (folder / "notes.txt").read_text() == "mine"
    left = _siblings(folder)
    assert [name for name in left if ".hf-genarm-save." in name], "the kill should leave a staging folder"
    _save_in_process(folder, seed=3)
    assert _which_model(folder, (1, 2, 3)) == 3
    assert (folder / "notes.txt").read_text() == "mine"
    assert _siblings(folder) == [], "the next save removes what killed saves left (staging, lock)"
    assert not [name for name in os.listdir(folder) if name.startswith(".")]


def test_staging_folders_of_live_processes_or_other_hosts_are_left_alone(tmp_path):
    folder = tmp_path / "arm"
    alive = tmp_path / f".arm.hf-genarm-save.{socket.gethostname()}.{os.getppid()}.abcd1234"
    other_host = tmp_path / ".arm.hf-genarm-save.some-other-host.1.abcd1234"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".arm.hf-genarm-save.{socket.gethostname()}.{dead.pid}.abcd1234"
    for path in (alive, other_host, stale):
        path.mkdir()
        (path / "model.safetensors").write_bytes(b"partial")
    _save_in_process(folder, seed=1)
    assert alive.is_dir() and other_host.is_dir(), "not provably stale: kept"
    assert not stale.exists(), "its process is gone: removed"


@pytest.mark.slow
def test_two_processes_saving_into_one_folder_run_one_after_the_other(tmp_path):
    folder = tmp_path / "arm"
    _save_in_process(folder, seed=1)
    first_holds_lock, second_started = tmp_path / "first-holds-lock", tmp_path / "second-started"
    first = _start_save(folder, seed=2, wait_for=second_started, ready=first_holds_lock)
    deadline = time.monotonic() + 240
    while not first_holds_lock.exists():
        assert first.poll() is None and time.monotonic() < deadline, _finish(first)[1]
        time.sleep(0.1)
    second = _start_save(folder, seed=3, ready=second_started)
    (code_first, out_first), (code_second, out_second) = _finish(first), _finish(second)
    assert (code_first, code_second) == (0, 0), out_first + out_second
    assert "Another process is saving into" in out_second, "the second save should have waited for the first"
    assert _which_model(folder, (1, 2, 3)) == 3, "the later save wins as a whole"
    assert _siblings(folder) == []


def test_a_plain_save_keeps_the_users_files_subfolders_and_the_folders_permissions(tmp_path):
    folder = tmp_path / "arm"
    _save_in_process(folder, seed=1)
    (folder / "checkpoint-2").mkdir()
    (folder / "checkpoint-2" / "optimizer.pt").write_bytes(b"state")
    (folder / "data.csv").write_text("a,b\n")
    folder.chmod(0o750)
    _save_in_process(folder, seed=2)
    assert _which_model(folder, (1, 2)) == 2
    assert (folder / "checkpoint-2" / "optimizer.pt").read_bytes() == b"state"
    assert (folder / "data.csv").read_text() == "a,b\n"
    assert folder.stat().st_mode & 0o777 == 0o750


def test_saving_through_a_symbolic_link_replaces_the_folder_it_points_to_and_keeps_the_link(tmp_path):
    target = tmp_path / "store" / "arm"
    _save_in_process(target, seed=1)
    link = tmp_path / "arm-link"
    link.symlink_to(target, target_is_directory=True)
    _save_in_process(link, seed=2)
    assert link.is_symlink()
    assert _which_model(target, (1, 2)) == 2
