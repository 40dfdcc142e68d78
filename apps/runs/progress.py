"""`progress.jsonl`: the training progress of a run, one JSON object a line, for the viewer's
live curves (`tensorfields view RUN --follow`, `train --view`).

Each line is `{"iteration": int, "seconds": float, "loss": float, "psnr": float}`: the
iteration, the training time so far (`train_seconds`), the batch's loss and its PSNR (dB).
`ProgressLog` appends about one line a second (no file write on the other iterations); when a
run starts it keeps only the lines up to the iteration it starts from (none for a new run, those
up to the checkpoint for a resumed one), so the log never runs ahead of the checkpoint it
continues. `ProgressReader` reads a log that is still growing, skipping damaged lines.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["PROGRESS_NAME", "PROGRESS_EVERY", "ProgressEntry", "ProgressLog", "ProgressReader", "parse_progress_line"]

PROGRESS_NAME = "progress.jsonl"
#: seconds between the lines `ProgressLog` writes
PROGRESS_EVERY = 1.0


class ProgressEntry(NamedTuple):
    """One line of the log: iteration, training seconds so far, the batch's loss and PSNR (dB)."""

    iteration: int
    seconds: float
    loss: float
    psnr: float

    def line(self) -> str:
        return json.dumps({"iteration": self.iteration, "seconds": round(self.seconds, 3), "loss": self.loss, "psnr": round(self.psnr, 4)}) + "\n"


def parse_progress_line(text: str | bytes) -> ProgressEntry | None:
    """The entry of one line, None when it is damaged (not JSON, not an object, a value missing,
    of the wrong type or not finite)."""
    try:
        record = json.loads(text)
        iteration = record["iteration"]
        values = [float(record[key]) for key in ("seconds", "loss", "psnr")]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        return None
    if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0 or not all(map(math.isfinite, values)):
        return None
    return ProgressEntry(iteration, *values)


class ProgressLog:
    """The writer of a run's `progress.jsonl` (see the module docstring): `record` every
    iteration, `close` at the end (it writes the last iteration's line if it is not written yet).

    Opening keeps the lines whose iteration is at most `start_iteration` (rewritten atomically:
    temporary file, then rename) and appends from there. Write failures are `OSError`s (the
    caller names the file)."""

    def __init__(self, path: str | Path, start_iteration: int, every: float = PROGRESS_EVERY) -> None:
        self.path, self.every = Path(path), every
        reader = ProgressReader(self.path)
        reader.update()
        kept = [entry for entry in reader.entries if entry.iteration <= start_iteration]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(entry.line() for entry in kept))
        tmp.replace(self.path)
        self._file = open(self.path, "a", encoding="utf-8")
        self._written = -math.inf
        self._pending: ProgressEntry | None = None

    def record(self, iteration: int, seconds: float, loss: float, psnr: float) -> None:
        """Note this iteration's progress; written when `every` seconds passed since the last line."""
        self._pending = ProgressEntry(iteration, seconds, loss, psnr)
        if time.monotonic() - self._written >= self.every:
            self._write()

    def close(self) -> None:
        """Write the last iteration's line (if pending) and close the file."""
        if self._file.closed:
            return
        try:
            if self._pending is not None:
                self._write()
        finally:
            self._file.close()

    def _write(self) -> None:
        assert self._pending is not None
        self._file.write(self._pending.line())
        self._file.flush()
        self._written, self._pending = time.monotonic(), None

    def __enter__(self) -> ProgressLog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ProgressReader:
    """Reads a `progress.jsonl` that may still grow: each `update` reads what was appended since
    the last one (a line still being written waits for its newline); a log replaced (a resumed
    or overwritten run) or truncated is read again from its start. `entries` holds the good lines
    in order, `damaged` counts the lines skipped."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.entries: list[ProgressEntry] = []
        self.damaged = 0
        self._offset = 0
        self._inode: int | None = None

    def update(self) -> bool:
        """Read what is new; returns whether `entries` or `damaged` changed. A missing file reads as empty."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return self._reset(None)
        changed = self._reset(stat.st_ino) if stat.st_ino != self._inode or stat.st_size < self._offset else False
        if stat.st_size == self._offset:
            return changed
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            if not line.strip():
                continue
            entry = parse_progress_line(line)
            if entry is None:
                self.damaged += 1
            else:
                self.entries.append(entry)
        return changed or bool(complete)

    def _reset(self, inode: int | None) -> bool:
        """Forget what was read (the log of `inode` is read from its start); whether anything was forgotten."""
        had = bool(self.entries or self.damaged)
        self.entries, self.damaged, self._offset, self._inode = [], 0, 0, inode
        return had
