"""A run folder belongs to one run: it is checked before the work, locked while the run lives,
and its write failures are one line naming the file.

`claim_run_folder` does it all for `training.train_run`, before the scene is loaded:

1. the folder is created if needed and must take a file (`check_writable`: a probe file is
   written and removed, so a read-only folder or a full disk is found before training, not
   at the final save);
2. `.lock` is taken (`RunLock`: `fcntl.flock`, released by the kernel when the process dies,
   so a lock file left by a killed run does not block the next one) and held to the end;
3. a folder holding another run's files (`previous_run`) is refused unless the run
   resumes it, which must train the same scene (`--data`), `--field` and `--downsample`
   (`check_resume`), or replaces it (`clear_run`: only the previous run's files go, its
   `progress.jsonl` with them; a resumed run's log is cut back to its checkpoint by
   `progress.ProgressLog`);
4. temporary files left by a killed save are removed (`remove_temporary_files`).

`atomic_output(path)` gives a writer of another file (a video, a mesh) a temporary path beside
it, renamed into place only when the writing succeeded.

`writing(path)` turns an `OSError` or safetensors' `SafetensorError` while writing `path` into
a `RunWriteError` that names the path and the reason.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from .checkpoint import CHECKPOINT_NAME, CheckpointError
from .progress import PROGRESS_NAME
from .records import load_run_config

__all__ = [
    "RunFolderError",
    "RunWriteError",
    "RunLock",
    "LOCK_NAME",
    "RUN_FILES",
    "claim_run_folder",
    "check_writable",
    "previous_run",
    "check_resume",
    "clear_run",
    "remove_temporary_files",
    "writing",
    "atomic_output",
]

#: the lock file of a run folder (holds the pid, host and start time of the run holding it)
LOCK_NAME = ".lock"
#: the files a training run writes into its folder, and its folder of held-out renders
RUN_FILES = (CHECKPOINT_NAME, "config.json", "metrics.json")
RENDERS = "renders"
#: what a resumed run must share with the saved one: config key -> its flag
RESUME_KEYS = {"data": "--data", "field": "--field", "downsample": "--downsample"}
#: temporary files of the atomic writes: `save_checkpoint`'s mkstemp `.<name>.<random>.tmp`,
#: `write_json`'s and `ProgressLog`'s `.<name>.tmp`, safetensors' own `.tmpXXXXXX` (it writes,
#: then renames), and `check_writable`'s probe
_TEMPORARY = re.compile(
    r"^\.(?:(?:" + "|".join(re.escape(name) for name in (*RUN_FILES, PROGRESS_NAME)) + r")(?:\.[^/]+)?\.tmp|tmp[A-Za-z0-9]{6}|write-test\.\d+)$"
)


class RunFolderError(CheckpointError):
    """A run folder that cannot be used now (not writable, another run's, locked, a resume of a
    different run); the message is one line naming the folder."""


class RunWriteError(RunFolderError):
    """Writing a file of the run folder failed; the message names the file and the reason."""


def _reason(error: BaseException) -> str:
    """The operating system's words for `error` ("No space left on device"), also inside a
    safetensors error, which wraps them in its own text."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    match = re.search(r"error: (.+?) \(os error \d+\)", str(error))
    return match.group(1) if match else str(error)


@contextmanager
def writing(path: str | Path, kept: str = "") -> Iterator[None]:
    """Raise a one-line `RunWriteError` naming `path` when the block fails to write it
    (`OSError`, `SafetensorError`); `kept` is appended (what survives, what to do)."""
    try:
        yield
    except (OSError, SafetensorError) as error:
        raise RunWriteError(f"{path}: cannot write ({_reason(error)}){'; ' + kept if kept else ''}") from None


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path`, with the same suffix (writers pick the format by it), for
    the block to write; it is renamed to `path` when the block succeeds and removed when it
    fails, so `path` is never left half-written. Write failures are `RunWriteError`s naming
    `path` (see `writing`); a block that finds its output incomplete raises one itself."""
    path = Path(path)
    with writing(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        with writing(path):
            yield tmp
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_writable(folder: str | Path) -> None:
    """Create `folder` if needed and check that a file can be written in it (a probe file is
    written, synced and removed); otherwise raise `RunFolderError` saying why."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunFolderError(f"{folder}: not a folder (a file of that name exists); choose another --out") from None
    except OSError as error:
        raise RunFolderError(f"{folder}: cannot create the run folder ({_reason(error)}); choose another --out") from None
    probe = folder / f".write-test.{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"tensorfields\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink()
    except OSError as error:
        raise RunFolderError(f"{folder}: cannot write to the run folder ({_reason(error)}); choose another --out") from None


def previous_run(folder: str | Path) -> list[str]:
    """What of an earlier run `folder` holds (`checkpoint.safetensors`, `config.json`,
    `metrics.json`, `renders/`); empty for a new folder."""
    folder = Path(folder)
    found = [name for name in RUN_FILES if (folder / name).is_file()]
    return found + [f"{RENDERS}/"] if (folder / RENDERS).is_dir() else found


def _same_data(saved: Any, new: Any) -> bool:
    """Whether two `--data` values name the same scene (paths resolved from the current folder)."""
    try:
        return os.path.samefile(saved, new)
    except (OSError, TypeError):
        return Path(str(saved)).expanduser().resolve() == Path(str(new)).expanduser().resolve()


def check_resume(folder: str | Path, train: Mapping[str, Any]) -> None:
    """Refuse to resume the run in `folder` with a config (`train`, as `TrainConfig.to_dict()`)
    whose scene, field or downsampling differs from the saved `config.json`; a folder without
    config.json has nothing to compare."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        return
    saved = load_run_config(folder).get("train", {})
    for key, flag in RESUME_KEYS.items():
        if key not in saved:
            continue
        old, new = saved[key], train[key]
        same = _same_data(old, new) if key == "data" else (float(old) == float(new) if key == "downsample" else old == new)
        if not same:
            raise RunFolderError(
                f"{folder}: cannot resume: the saved run has {flag} {old}, this one {flag} {new}; resume with "
                f"{flag} {old}, or use another --out (--overwrite without --resume replaces the run)"
            )


def clear_run(folder: str | Path) -> list[str]:
    """Remove the previous run's files from `folder` (`previous_run`, its `progress.jsonl` and
    temporary files); nothing else there is touched (the demo keeps its scene there). Returns
    what `previous_run` found."""
    folder = Path(folder)
    removed = previous_run(folder)
    for name in (*removed, PROGRESS_NAME):
        path = folder / name.rstrip("/")
        with writing(path):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    remove_temporary_files(folder)
    return removed


def remove_temporary_files(folder: str | Path) -> list[Path]:
    """Remove the temporary files of checkpoint and record writes that a killed run left in
    `folder` (call it holding the folder's lock: a live run's are in use). Returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    leftovers = sorted(path for path in folder.iterdir() if _TEMPORARY.match(path.name) and path.is_file())
    for path in leftovers:
        with writing(path):
            path.unlink(missing_ok=True)
    return leftovers


class RunLock:
    """The lock of a run folder, for a `with` block: `fcntl.flock` on `<folder>/.lock`, which
    records the holder's pid, host and start time. A second lock on the folder (another process,
    or this one) fails at once with `RunFolderError` naming the holder. The kernel drops the
    lock when its process dies, so the file a killed run leaves behind blocks nothing; a clean
    exit removes it."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        for _ in range(10):
            with writing(self.path):
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(fd)
                if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    message = f"{self.folder}: in use by another run ({self.holder()}); wait for it, or use another --out"
                    raise RunFolderError(message) from None
                raise RunFolderError(f"{self.path}: cannot lock the run folder ({_reason(error)})") from None
            try:
                same_file = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same_file = False
            if same_file:  # else the holder removed the file as we opened it: lock the new one
                break
            os.close(fd)
        else:
            raise RunFolderError(f"{self.path}: the lock file keeps changing; is another run starting there?")
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(record) + "\n").encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # before unlocking, so no one locks a removed file
        except OSError:
            pass  # a folder turned read-only: the stale file blocks nothing
        os.close(self._fd)
        self._fd = None

    def holder(self) -> str:
        """Who holds the lock, as its file says ("pid 123 on host, since ...")."""
        try:
            record = json.loads(self.path.read_text())
            return f"pid {record['pid']} on {record['host']}, since {record['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "a process that has not written its pid yet"

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


@contextmanager
def claim_run_folder(
    folder: str | Path, train: Mapping[str, Any] | None = None, resume: bool = False, overwrite: bool = False
) -> Iterator[list[str]]:
    """Check, lock and prepare `folder` for a run of `train` (a `TrainConfig.to_dict()`; None for
    a run folder that is written, not trained: `slim`) for the `with` block (see the module
    docstring); yields what to tell the user (removed files).

    Raises `RunFolderError` when the folder cannot be written, is locked by another run, holds
    another run and neither `resume` nor `overwrite` is given, or holds a different run than
    `resume` continues.
    """
    folder = Path(folder)
    if resume and overwrite:
        raise RunFolderError(f"{folder}: --resume continues the run there and --overwrite replaces it; give one of them")
    check_writable(folder)
    with RunLock(folder):
        events = []
        found = previous_run(folder)
        if resume:
            if train is not None:
                check_resume(folder, train)
        elif found and overwrite:
            clear_run(folder)
            events.append(f"--overwrite: removed the previous run's {', '.join(found)} from {folder}")
        elif found:
            raise RunFolderError(
                f"{folder}: holds another run ({', '.join(found)}); continue it with --resume, "
                "replace it with --overwrite, or choose another --out"
            )
        leftovers = remove_temporary_files(folder)
        if leftovers:
            events.append(f"removed {len(leftovers)} temporary file(s) left by an interrupted save: {', '.join(p.name for p in leftovers)}")
        yield events
