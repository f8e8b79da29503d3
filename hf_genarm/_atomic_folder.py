"""Replace a folder as a whole: every reader sees the folder before a save or after it, never a mix of both.

Why a swap of directories and not a manifest: a manifest that loading verifies only protects readers that know
it, while a reward-model folder is read by tools that do not (`AutoModelForCausalLM.from_pretrained`, PEFT,
vLLM). So a save writes a complete sibling folder (`.<name>.hf-genarm-save.<host>.<pid>.<random>`, on the same
file system), brings over by hard links what the folder held besides the replaced files (the user's notes, data,
`checkpoint-*` folders; hard links cost no space and keep files that another process holds open), and then
exchanges the two directory entries in one step (Linux `renameat2(RENAME_EXCHANGE)`). A save killed at any point
leaves the folder as it was or as the save wrote it. Where the exchange is not available (other systems, file
systems without it) two renames are used: a save killed between them leaves no folder but the previous one under
`.<name>.hf-genarm-old.*`, which the next save of that folder puts back.

Saves of one folder are serialised by an exclusive lock (`fcntl.flock` on `.<name>.hf-genarm-lock` beside the
folder, removed when the save ends): a second saver waits for the first and then replaces its model as a whole.
Staging folders of killed saves are removed by the next save of the same folder, only when their name proves them
ours (this host) and stale (their process is gone).

A process reading files of the folder one by one while a save swaps it may still open some files before the swap
and some after; the swap only guarantees each path names a complete save at every instant.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import socket
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator

from transformers.utils import logging

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: an O_EXCL lock file instead
    fcntl = None

logger = logging.get_logger(__name__)

_STAGING_MARK = ".hf-genarm-save."
_OLD_MARK = ".hf-genarm-old."
_LOCK_SUFFIX = ".hf-genarm-lock"
# Staging folders that earlier hf-genarm versions made *inside* the folder; never carried into a new save.
LEGACY_STAGING_PREFIX = ".hf-genarm-save-"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def check_folder_writable(folder: str | os.PathLike, argument: str) -> None:
    """Refuse, before any work, a folder that a save could not replace: it, or the folder holding it, is read-only.

    A save writes a sibling folder and swaps it in, so it needs to write into the folder's parent as well (or into
    the nearest existing folder above, where it will be created). The check writes and removes a probe file, so
    read-only file systems are caught as well as permissions.

    Args:
        folder (`str` or `os.PathLike`): The folder a model will be saved into.
        argument (`str`): How errors name the folder (e.g. "`output_dir`").

    Raises:
        ValueError: Naming `argument`, the folder that cannot be written and what to do.
    """
    folder = os.path.abspath(os.fspath(folder))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"{argument} ({folder}) is a file; pass a folder.")
    probes = [folder] if os.path.isdir(folder) else []
    ancestor = os.path.dirname(folder)
    while not os.path.isdir(ancestor) and os.path.dirname(ancestor) != ancestor:
        ancestor = os.path.dirname(ancestor)
    probes.append(ancestor)
    for probe in probes:
        try:
            with tempfile.TemporaryFile(dir=probe, prefix=".hf-genarm-write-probe-"):
                pass
        except OSError as error:
            raise ValueError(
                f"{argument} ({folder}) cannot be saved into: {probe} is not writable ({error.strerror or error}). "
                "A save replaces the folder as a whole, so both the folder and the folder holding it must be "
                "writable; choose a folder you can write, or change its permissions."
            ) from None


def _owned_sibling(folder: str, mark: str) -> str:
    """A new sibling path of `folder` whose name proves who made it (host, process), for `_remove_stale_saves`."""
    parent, name = os.path.split(folder)
    return os.path.join(parent, f".{name}{mark}{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}")


def _host_and_pid(entry: str, prefix: str) -> tuple[str, int] | None:
    """The host and process that made a staging entry named `prefix + host.pid.random`, or `None` if not ours."""
    parts = entry[len(prefix) :].rsplit(".", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def _is_stale(host: str, pid: int) -> bool:
    """Whether a save by `pid` on `host` is provably over: same host and the process is gone (or is us, since the
    caller holds the folder's lock, so no save of ours is running)."""
    if host != socket.gethostname():
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def _remove_stale_saves(folder: str) -> None:
    parent, name = os.path.split(folder)
    for entry in sorted(os.listdir(parent)):
        for mark in (_STAGING_MARK, _OLD_MARK):
            prefix = f".{name}{mark}"
            owner = _host_and_pid(entry, prefix) if entry.startswith(prefix) else None
            if owner is None or not _is_stale(*owner):
                continue
            path = os.path.join(parent, entry)
            if mark == _OLD_MARK and not os.path.lexists(folder):
                # Killed between the two renames of a swap without RENAME_EXCHANGE: this is the folder's last
                # complete content.
                os.rename(path, folder)
                logger.warning(f"Restored {folder} from {path}, left by a save that was killed while swapping.")
            else:
                shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def exclusive_save_lock(folder: str) -> Iterator[None]:
    """Hold the exclusive lock of saves into `folder`; waits (saying so) while another process holds it."""
    parent, name = os.path.split(folder)
    path = os.path.join(parent, f".{name}{_LOCK_SUFFIX}")
    if fcntl is None:  # pragma: no cover - Windows
        try:
            handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            raise RuntimeError(
                f"Another save into {folder} is running (or was killed and left {path}); wait for it, or remove "
                f"{path} if no save is running."
            ) from None
        try:
            yield
        finally:
            os.close(handle)
            os.unlink(path)
        return
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.warning(f"Another process is saving into {folder}; waiting for it to finish.")
            fcntl.flock(handle, fcntl.LOCK_EX)
        # The holder before us unlinks the file when done: a lock on an unlinked file locks nothing, so retry.
        try:
            same_file = os.path.samestat(os.fstat(handle), os.stat(path))
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        os.close(handle)
    try:
        yield
    finally:
        os.unlink(path)  # while still holding the lock, so that no one waits on a file that is gone
        os.close(handle)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:  # file systems without hard links, or another device
        shutil.copy2(source, target, follow_symlinks=False)


def _carry_over(source: str, target: str, skipped: set[str]) -> None:
    """Bring into `target` what `source` holds and `target` does not (new files win), except top-level `skipped`."""
    for entry in os.scandir(source):
        if entry.name in skipped:
            continue
        destination = os.path.join(target, entry.name)
        if entry.is_dir(follow_symlinks=False):
            if os.path.lexists(destination) and not os.path.isdir(destination):
                continue
            os.makedirs(destination, exist_ok=True)
            shutil.copymode(entry.path, destination)
            _carry_over(entry.path, destination, set())
        elif not os.path.lexists(destination):
            _link_or_copy(entry.path, destination)


def _exchange(staging: str, folder: str) -> str:
    """Swap the folders `staging` and `folder`; return the path that now holds the previous content."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        result = renameat2(_AT_FDCWD, os.fsencode(staging), _AT_FDCWD, os.fsencode(folder), _RENAME_EXCHANGE)
        if result == 0:
            return staging
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), folder)
    previous = _owned_sibling(folder, _OLD_MARK)
    os.rename(folder, previous)
    os.rename(staging, folder)
    return previous


def replace_folder(folder: str, write: Callable[[str], None], dropped: Callable[[list[str]], set[str]]) -> None:
    """Replace `folder` by what `write(staging)` writes plus what `folder` held, all at once.

    Args:
        folder (`str`): Absolute path of the folder (created if missing); its parent must exist.
        write (`Callable[[str], None]`): Writes the new content into the empty staging folder it is given.
        dropped (`Callable[[list[str]], set[str]]`): Given the top-level files `write` wrote, the top-level names
            of `folder` not to carry over (the files the new save replaces).
    """
    with exclusive_save_lock(folder):
        _remove_stale_saves(folder)
        staging = _owned_sibling(folder, _STAGING_MARK)
        os.mkdir(staging)  # with the umask's mode, as the folder would get it
        try:
            write(staging)
            if os.path.isdir(folder):
                written = sorted(entry.name for entry in os.scandir(staging) if entry.is_file())
                _carry_over(folder, staging, dropped(written))
                os.chmod(staging, stat.S_IMODE(os.stat(folder).st_mode))
                shutil.rmtree(_exchange(staging, folder), ignore_errors=True)
            else:
                os.rename(staging, folder)
        finally:
            if os.path.lexists(staging):
                shutil.rmtree(staging, ignore_errors=True)
