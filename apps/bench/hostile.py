"""`tensorfields bench hostile`: a catalogue of hostile inputs, faults and flag values run through
the command line, each case classified clear / unclear / broken.

Every case runs `[python, "-m", "apps.cli", ...]` in a subprocess (PYTHONPATH: `--pythonpath`,
else this checkout, so the same catalogue runs against another checkout), in a scratch folder,
under a 6 GiB address-space limit (RLIMIT_AS, so a multi-GB allocation fails instead of
swapping), with a timeout. The tiny inputs are made first in a temporary folder: a sphere scene
(12 views of 40x30, nerfstudio `transforms.json`), a 30-iteration run on it, its slimmed copy, a
short video; each case then builds its broken variant (scene files, checkpoints edited with
safetensors, run folders) beside them.

Classes of cases: scene, checkpoint, run-folder, flag, fault (kill -9, Ctrl-C, two runs on one
folder, a full disk simulated with RLIMIT_FSIZE), viewer (`view` in a subprocess and HTTP
requests to it). Verdicts:

- clear: the expected outcome. For a failure: exit 2, no traceback, exactly one message line on
  stderr (argparse's usage block, progress bars and the lines a normal run prints are ignored),
  naming the flag or the file when the case is about one. For a success: exit 0 and the case's
  own checks pass (--resume after a kill continues, the output exists, ...).
- unclear: it failed as it should, but with a traceback, another exit code, several lines or a
  message that names neither the flag nor the file.
- broken: it succeeded where it must not (exit 0 after zero iterations, PSNR nan, a run silently
  replaced, ...), failed where success is right, was killed by a signal, hung past the timeout,
  allocated absurdly (hit the address-space limit, or peaked above 3 GiB resident), left
  orphaned temporary files, or the viewer served what it must not.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import http.client
import json
import os
import pickle
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field as dataclass_field
from pathlib import Path
from typing import Any

from data.synthetic import write_sphere_scene

from ..commands import types as flag_types

__all__ = [
    "add_arguments",
    "bench_hostile",
    "Case",
    "Outcome",
    "Hostile",
    "HostileError",
    "catalogue",
    "classify",
    "message_lines",
    "names_any",
    "KINDS",
    "VERDICTS",
]

#: the checkout this module belongs to (the default PYTHONPATH of the cases)
ROOT = Path(__file__).resolve().parents[2]
KINDS = ("scene", "checkpoint", "run-folder", "flag", "fault", "viewer")
VERDICTS = ("clear", "unclear", "broken")
EXPECTS = ("error", "success", "either")
_RANK = {verdict: rank for rank, verdict in enumerate(VERDICTS)}
#: address-space limit of every case (RLIMIT_AS): a multi-GB allocation fails instead of swapping
MEMORY_LIMIT = 4 * 2**30
#: peak resident memory (MB) above which a case counts as an absurd allocation (a normal case: ~0.5 GB)
RSS_LIMIT_MB = 2048.0
#: what a failed allocation prints (lower case)
ALLOCATION_FAILURES = ("can't allocate memory", "cannot allocate memory", "memoryerror", "bad_alloc", "out of memory", "unable to allocate")
CHECKPOINT = "checkpoint.safetensors"
#: grid and batch flags of every training case (a tiny field trains in seconds)
GRID = ["--grid-init", "12", "--grid-final", "16", "--batch-size", "256"]
#: the tiny run every run and checkpoint case starts from
TINY_ITERS = 30
#: flags that are words in their own right: only "--flag" names them in a message
_SHORT_WORDS = {"out", "run", "data", "json", "size", "host", "fps", "eta", "seed", "port", "rank", "level", "faces", "split", "field"}


class HostileError(ValueError):
    """The catalogue could not be prepared (one line, printed by the CLI)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", default=None, help="write every case and its classification to this JSON file")
    parser.add_argument("--only", default=None, help="run only the cases whose id contains this (comma-separated: any of them)")
    parser.add_argument("--python", default=sys.executable, help="Python interpreter of the cases (default: this one)")
    parser.add_argument(
        "--pythonpath", default=None, help="checkout whose CLI the cases run (PYTHONPATH; default: this checkout)"
    )
    parser.add_argument("--jobs", type=flag_types.positive_int(16, "cases"), default=2, help="cases run at once, faults and viewer cases aside (default: 2)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder of inputs and outputs")
    parser.add_argument("--list", action="store_true", help="list the catalogue (id, class, argv) without running it")


# --- outcomes and classification --------------------------------------------------------------


@dataclass
class Outcome:
    """What one case did. rc: exit status (negative: killed by that signal; None: no process ran).
    served: a `view` answered HTTP. verdict/reason: a runner's own judgement (HTTP cases, fault
    checks), which `classify` keeps unless the process did worse."""

    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    timed_out: bool = False
    max_rss_mb: float = 0.0
    served: bool = False
    verdict: str | None = None
    reason: str = ""
    first_line: str = ""
    notes: list[str] = dataclass_field(default_factory=list)


@dataclass
class Case:
    """One hostile input. argv: the CLI arguments (after `python -m apps.cli`; for HTTP cases the
    request). expect: "error", "success" or "either". about: flags or paths a clear message
    names (any one). needs: inputs prepared first. setup: builds the case's broken variant.
    check(outcome): a further (verdict, reason) after the run, or None. runner: runs the case
    itself (faults, viewer), else `argv` runs once. serial: runs alone (timing-sensitive)."""

    id: str
    kind: str
    argv: list[str]
    expect: str
    note: str
    about: list[str] = dataclass_field(default_factory=list)
    timeout: float = 60.0
    needs: tuple[str, ...] = ()
    setup: Callable[[], None] | None = None
    check: Callable[[Outcome], tuple[str, str] | None] | None = None
    runner: Callable[["Hostile", "Case"], Outcome] | None = None
    serial: bool = False


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: progress bars, the INFO lines of httpx that Gradio's startup logs, and the INFO lines of the
#: CLI's structure-from-motion and video steps (which no normal run of the catalogue prints)
_PROGRESS = re.compile(
    r"\d+it \[|it/s\]|s/it\]|\d+%\|| frame/s\]|s/frame\]|^HTTP Request: |^structure-from-motion on \d+ images"
    r"|^SfM \w+: [\d.:]+( s)?$|^wrote .* \(\d+ cameras\) in |^undistorting \d+ images|^using the frames already extracted|: \d+ frames at .* fps into "
)


def normalise(line: str, root: str | None = None) -> str:
    """A stderr line with the scratch folder and every number abstracted (for the normal set)."""
    line = line.strip()
    if root:
        line = line.replace(root, "<T>")
    return re.sub(r"\d+(\.\d+)?", "#", line)


def message_lines(stderr: str, normal: frozenset[str] | set[str] = frozenset(), root: str | None = None) -> list[str]:
    """The message lines of a case's stderr: without blank lines, argparse's usage block,
    progress bars and the lines a normal run prints (`normal`, normalised)."""
    lines: list[str] = []
    in_usage = False
    for raw in re.split(r"[\r\n]+", _ANSI.sub("", stderr)):
        if not raw.strip():
            continue
        if raw.startswith("usage: "):
            in_usage = True
            continue
        if in_usage and raw.startswith(" "):
            continue
        in_usage = False
        if _PROGRESS.search(raw) or normalise(raw, root) in normal:
            continue
        lines.append(raw.strip())
    return lines


def _forms(about: str) -> list[re.Pattern[str]]:
    """Patterns that count as naming `about` (a flag, a path or a word)."""
    if about.startswith("--"):
        bare = about[2:]
        forms = [re.escape(about)]
        if bare not in _SHORT_WORDS and len(bare) >= 4:
            forms += [rf"\b{re.escape(bare)}\b", rf"\b{re.escape(bare.replace('-', '_'))}\b", rf"\b{re.escape(bare.replace('-', ' '))}\b"]
        return [re.compile(form, re.IGNORECASE) for form in forms]
    forms = [re.escape(about)]
    if "/" in about:
        name = Path(about).name
        if len(name) >= 4:
            forms.append(re.escape(name))
    return [re.compile(form, re.IGNORECASE) for form in forms]


def names_any(line: str, about: list[str]) -> bool:
    """Whether a message line names one of `about` (see `_forms`)."""
    return any(form.search(line) for item in about for form in _forms(item))


def _last_stdout(outcome: Outcome) -> str:
    lines = [line.strip() for line in outcome.stdout.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _base_verdict(case: Case, outcome: Outcome, lines: list[str]) -> tuple[str, str]:
    text = outcome.stderr.lower()
    if outcome.max_rss_mb > RSS_LIMIT_MB:
        return "broken", f"allocated absurdly: {outcome.max_rss_mb:.0f} MB resident" + (f", killed after {case.timeout:.0f} s" if outcome.timed_out else "")
    if outcome.timed_out:
        return "broken", outcome.reason or f"hung: still running after {case.timeout:.0f} s"
    if outcome.rc is not None and outcome.rc < 0:
        try:
            name = signal.Signals(-outcome.rc).name
        except ValueError:
            name = str(-outcome.rc)
        return "broken", f"killed by signal {name}"
    if any(failure in text for failure in ALLOCATION_FAILURES):
        return "broken", f"allocated absurdly: hit the {MEMORY_LIMIT >> 30} GiB address-space limit"
    if outcome.verdict is not None:
        return outcome.verdict, outcome.reason
    if outcome.rc is None:
        return "broken", outcome.reason or "did not run"
    if outcome.rc == 0:
        if case.expect == "error":
            what = "served the viewer" if outcome.served else f"exit 0 ({_last_stdout(outcome) or 'no output'})"
            return "broken", f"succeeded where it must fail: {what}"
        if "Traceback" in outcome.stderr:
            return "unclear", "succeeded, but printed a traceback"
        return "clear", "succeeded"
    if case.expect == "success":
        return "broken", f"failed where success is right (exit {outcome.rc})"
    if "Traceback" in outcome.stderr:
        return "unclear", "traceback"
    if outcome.rc != 2:
        return "unclear", f"exit {outcome.rc}"
    if not lines:
        return "unclear", "no message"
    if len(lines) > 1:
        return "unclear", f"{len(lines)} message lines"
    if case.about and not names_any(lines[0], case.about):
        return "unclear", "names neither the flag nor the file"
    return "clear", "one-line error"


def exception_line(stderr: str) -> str:
    """The exception line of a traceback on stderr ("" without one)."""
    if "Traceback" not in stderr:
        return ""
    lines = [line.strip() for line in stderr.splitlines()[stderr.splitlines().index(next(l for l in stderr.splitlines() if "Traceback" in l)) :]]
    return next((line for line in reversed(lines) if re.match(r"^[\w.]+(Error|Exception|Interrupt|Exit)\b|^[\w.]+: ", line)), lines[-1] if lines else "")[:300]


def classify(case: Case, outcome: Outcome, normal: frozenset[str] | set[str] = frozenset(), root: str | None = None) -> tuple[str, str, str]:
    """(verdict, reason, first message line) of a case's outcome; see the module docstring."""
    lines = message_lines(outcome.stderr, normal, root)
    first = outcome.first_line or (lines[0] if lines else "")
    verdict, reason = _base_verdict(case, outcome, lines)
    if case.check is not None and outcome.rc is not None and not outcome.timed_out:
        try:
            extra = case.check(outcome)
        except Exception as error:  # a check that cannot read the result says so
            extra = ("broken", f"check failed: {type(error).__name__}: {error}")
        if extra is not None and _RANK[extra[0]] >= _RANK[verdict]:
            verdict, reason = extra[0], extra[1] if _RANK[extra[0]] > _RANK[verdict] else f"{reason}; {extra[1]}"
    return verdict, reason, first[:300]


# --- child processes ------------------------------------------------------------------------


class Child:
    """A CLI subprocess in its own session, stdout/stderr to files, limits set with prlimit;
    `finished()` reaps it with wait4 (its own peak RSS)."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path, log_dir: Path, fsize: int | None = None) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = log_dir / "stdout.txt", log_dir / "stderr.txt"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd, env=env, start_new_session=True)
        self.pid = self.proc.pid
        try:
            resource.prlimit(self.pid, resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
            if fsize is not None:
                resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (fsize, fsize))
        except (ProcessLookupError, OSError):
            pass
        self.started = time.perf_counter()
        self.rc: int | None = None
        self.rss_mb = 0.0
        self.ended: float | None = None

    def finished(self) -> bool:
        if self.rc is None:
            try:
                pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost
                self.rc, self.ended = 255, time.perf_counter()
                return True
            if pid:
                self._reaped(status, usage)
        return self.rc is not None

    def _reaped(self, status: int, usage: Any) -> None:
        self.rc, self.rss_mb, self.ended = os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024.0, time.perf_counter()
        self.proc.returncode = self.rc

    def wait(self, timeout: float) -> bool:
        """True when it ended within `timeout` seconds."""
        deadline = time.perf_counter() + timeout
        while not self.finished():
            if time.perf_counter() > deadline:
                return False
            time.sleep(0.05)
        return True

    def send(self, sig: int) -> None:
        if not self.finished():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL its whole session (the process and whatever it started), then reap it."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.rc is None:
            try:
                _, status, usage = os.wait4(self.pid, 0)
                self._reaped(status, usage)
            except ChildProcessError:
                self.rc, self.ended = 255, time.perf_counter()

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def outcome(self, timed_out: bool = False) -> Outcome:
        end = self.ended or time.perf_counter()
        return Outcome(
            rc=None if timed_out else self.rc,
            stdout=self.stdout(),
            stderr=self.stderr(),
            seconds=round(end - self.started, 2),
            timed_out=timed_out,
            max_rss_mb=round(self.rss_mb, 1),
        )


def _wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request to 127.0.0.1:port (the path is sent as given, `..` and all)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Host": f"127.0.0.1:{port}", **(headers or {})})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read(1 << 20)
    finally:
        connection.close()


# --- the scratch folder and its inputs ------------------------------------------------------


def _read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Tensors (numpy) and the tensorfields header (None without one) of a checkpoint file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        metadata = handle.metadata() or {}
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    header = json.loads(metadata["tensorfields"]) if "tensorfields" in metadata else None
    return tensors, header


def _write_checkpoint(path: Path, tensors: dict[str, Any], header: dict[str, Any] | None, raw_header: str | None = None) -> None:
    from safetensors.numpy import save_file

    metadata = None
    if raw_header is not None:
        metadata = {"tensorfields": raw_header}
    elif header is not None:
        metadata = {"tensorfields": json.dumps(header)}
    save_file(tensors, str(path), metadata=metadata)


def _factor_key(tensors: dict[str, Any]) -> str:
    """A field factor (the first floating field tensor with 3 or more dimensions)."""
    return next(k for k, v in sorted(tensors.items()) if k.startswith("field.") and v.ndim >= 3 and v.dtype.kind == "f")


def _optim_key(tensors: dict[str, Any], suffix: str) -> str:
    return next(k for k in sorted(tensors) if k.startswith("optim.") and k.endswith(suffix))


def _header_state(path: Path) -> dict[str, Any]:
    """The train_state of a checkpoint ({} when it has none)."""
    _, header = _read_checkpoint(path)
    return (header or {}).get("train_state", {}) or {}


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else ""


def _orphans(folder: Path) -> list[str]:
    """Temporary files left in a folder (`.name.*.tmp`, `*.tmp`)."""
    return sorted(p.name for p in folder.glob("*.tmp")) + sorted(p.name for p in folder.glob(".*.tmp") if p.name not in {q.name for q in folder.glob("*.tmp")})


class Hostile:
    """The scratch folder, the inputs every case starts from, and how cases run."""

    def __init__(self, root: Path, python: str, pythonpath: str | None) -> None:
        self.root = root
        self.python = python
        self.pythonpath = str(Path(pythonpath).resolve()) if pythonpath else str(ROOT)
        self.cwd, self.tmpdir, self.logs = root / "cwd", root / "tmp", root / "logs"
        for folder in (self.cwd, self.tmpdir, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        self.scene, self.scene2, self.photos = root / "scene", root / "scene2", root / "photos"
        self.run, self.slim, self.video, self.file = root / "run", root / "slim", root / "clip.mp4", root / "a-file.txt"
        self.normal: set[str] = set()
        self.prepared: dict[str, str | None] = {}  # need -> None when ready, else why not
        self.viewer: Child | None = None
        self.viewer_port: int | None = None
        self.viewer_tmp = root / "viewer-tmp"
        self.viewer_failure: Outcome | None = None
        self._help: dict[str, str] = {}
        self._lock = threading.Lock()
        self._serial = 0

    # paths and environment
    def case_dir(self, case_id: str) -> Path:
        return self.root / "cases" / case_id

    def env(self, tmpdir: Path | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PYTHONPATH=self.pythonpath,
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
            TMPDIR=str(tmpdir or self.tmpdir),
            GRADIO_ANALYTICS_ENABLED="False",
            HF_HUB_OFFLINE="1",
            NO_COLOR="1",
        )
        return env

    def _log_dir(self, name: str) -> Path:
        with self._lock:
            self._serial += 1
            return self.logs / f"{self._serial:04d}-{name}"

    # running the CLI
    def start(self, argv: list[str], name: str, fsize: int | None = None, tmpdir: Path | None = None) -> Child:
        cmd = [self.python, "-m", "apps.cli", *argv]
        return Child(cmd, self.env(tmpdir), self.cwd, self._log_dir(name), fsize)

    def cli(self, argv: list[str], name: str, timeout: float, fsize: int | None = None) -> Outcome:
        child = self.start(argv, name, fsize)
        if child.wait(timeout):
            return child.outcome()
        child.kill()
        return child.outcome(timed_out=True)

    def help_text(self, command: str) -> str:
        if command not in self._help:
            self._help[command] = self.cli([command, "--help"], f"help-{command}", 60).stdout
        return self._help[command]

    def has_flag(self, command: str, flag: str) -> bool:
        return flag in self.help_text(command)

    def add_normal(self, outcome: Outcome) -> None:
        for line in re.split(r"[\r\n]+", _ANSI.sub("", outcome.stderr)):
            if line.strip() and "Traceback" not in line:
                self.normal.add(normalise(line, str(self.root)))

    # inputs
    def prepare(self, needs: set[str]) -> None:
        order = ["file", "scene", "scene2", "photos", "video", "run", "slim"]
        closure = set(needs)
        if closure & {"run", "slim"}:
            closure |= {"scene", "run"}
        if closure & {"photos", "video", "scene2"}:
            closure.add("scene")
        for need in order:
            if need in closure and need not in self.prepared:
                print(f"hostile: preparing {need}", flush=True)
                self.prepared[need] = self._prepare(need)

    def _prepare(self, need: str) -> str | None:
        if need == "file":
            self.file.write_text("not a folder\n")
        elif need == "scene":
            write_sphere_scene(self.scene)
        elif need == "scene2":
            write_sphere_scene(self.scene2, views=10, radius=0.7)
        elif need == "photos":
            self.photos.mkdir(exist_ok=True)
            for image in sorted(self.scene.glob("*.png")):
                shutil.copy(image, self.photos / image.name)
        elif need == "video":
            import imageio.v2 as imageio
            import numpy as np

            frames = [np.ascontiguousarray(imageio.imread(p)[..., :3]) for p in sorted(self.scene.glob("*.png"))]
            imageio.mimwrite(self.video, frames, fps=4, macro_block_size=1)
        elif need == "run":
            argv = ["train", "--data", str(self.scene), "--out", str(self.run), "--iters", str(TINY_ITERS), *GRID]
            outcome = self.cli(argv, "prepare-run", 300)
            if outcome.rc != 0:
                tail = (outcome.stderr.strip().splitlines() or ["no output"])[-1]
                raise HostileError(f"could not train the tiny run ({' '.join(argv)}): {tail}")
            self.add_normal(outcome)
            evaluation = self.cli(["eval", str(self.run)], "prepare-eval", 120)
            if evaluation.rc == 0:
                self.add_normal(evaluation)
        elif need == "slim":
            outcome = self.cli(["slim", str(self.run), "--rank", "4", "--out", str(self.slim)], "prepare-slim", 120)
            if outcome.rc != 0:
                return f"slim failed: {(outcome.stderr.strip().splitlines() or ['no output'])[-1]}"
            self.add_normal(outcome)
        return None

    def copy_run(self, dest: Path, source: Path | None = None) -> Path:
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(source or self.run, dest)
        return dest

    # the shared viewer of the HTTP cases
    def viewer_server(self) -> int | None:
        """Port of the viewer of the tiny run, started on first use; None when it does not serve."""
        if self.viewer is not None or self.viewer_failure is not None:
            return self.viewer_port
        self.viewer_tmp.mkdir(exist_ok=True)
        port = _free_port()
        child = self.start(["view", str(self.run), "--port", str(port)], "viewer", tmpdir=self.viewer_tmp)
        served = _serve_wait(child, port, 150)
        if served is True:
            self.viewer, self.viewer_port = child, port
            return port
        if served is None:
            child.kill()
            self.viewer_failure = Outcome(verdict="broken", reason="the viewer did not serve within 150 s")
        else:
            self.viewer_failure = child.outcome()
        return None

    def stop_viewer(self) -> Outcome | None:
        """Ctrl-C the shared viewer (then SIGKILL after 20 s); its outcome."""
        child, self.viewer = self.viewer, None
        if child is None:
            return None
        child.send(signal.SIGINT)
        if child.wait(20):
            return child.outcome()
        child.kill()
        outcome = child.outcome()
        outcome.notes.append("Ctrl-C did not stop the viewer within 20 s")
        return outcome


def _serve_wait(child: Child, port: int | None, timeout: float) -> bool | None:
    """Wait until a `view` child answers HTTP (True), exits (False) or `timeout` passes (None)."""
    url = re.compile(r"Running on local URL:\s+http://[^:\s]+:(\d+)")
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if child.finished():
            return False
        match = url.search(child.stdout())
        probe = int(match.group(1)) if match else port
        if probe is not None and 0 < probe < 65536:
            try:
                _http(probe, "GET", "/")
                return True
            except (OSError, http.client.HTTPException):
                pass
        time.sleep(0.5)
    return None


# --- runners --------------------------------------------------------------------------------


def _run_argv(h: Hostile, case: Case) -> Outcome:
    return h.cli(case.argv, case.id, case.timeout)


def _serve_runner(h: Hostile, case: Case) -> Outcome:
    """`view ...`: served (then stopped with Ctrl-C) or failed."""
    port = None
    if "--port" in case.argv:
        try:
            port = int(case.argv[case.argv.index("--port") + 1])
        except ValueError:
            port = None
    tmp = h.case_dir(case.id) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    child = h.start(case.argv, case.id, tmpdir=tmp)
    served = _serve_wait(child, port, case.timeout)
    if served is None:
        child.kill()
        return child.outcome(timed_out=True)
    if served is False:
        return child.outcome()
    child.send(signal.SIGINT)
    if not child.wait(20):
        child.kill()
    outcome = child.outcome()
    outcome.rc, outcome.served = 0, True
    return outcome


def _http_runner(method: str, path: str | Callable[[Hostile], str], judge: Callable[[int, dict[str, str], bytes], tuple[str, str]], headers: dict[str, str] | None = None, body: bytes | None = None) -> Callable[[Hostile, Case], Outcome]:
    def run(h: Hostile, case: Case) -> Outcome:
        port = h.viewer_server()
        if port is None:
            failure = h.viewer_failure or Outcome()
            first = (message_lines(failure.stderr) or [failure.reason or "no message"])[0]
            return Outcome(rc=None, verdict="broken", reason="the viewer of the tiny run did not serve", first_line=first)
        target = path(h) if callable(path) else path
        started = time.perf_counter()
        try:
            status, response_headers, data = _http(port, method, target, headers, body)
        except (OSError, http.client.HTTPException) as error:
            return Outcome(rc=None, verdict="broken", reason=f"no HTTP answer: {error}", first_line=str(error))
        verdict, reason = judge(status, response_headers, data)
        snippet = data[:120].decode("utf-8", "replace").replace("\n", " ")
        return Outcome(rc=0, verdict=verdict, reason=reason, first_line=f"HTTP {status}: {snippet}", seconds=round(time.perf_counter() - started, 2))

    return run


def _judge_rejected(what: str) -> Callable[[int, dict[str, str], bytes], tuple[str, str]]:
    """A request the viewer must refuse: 4xx clear, 2xx broken, anything else unclear."""

    def judge(status: int, headers: dict[str, str], data: bytes) -> tuple[str, str]:
        if 400 <= status < 500:
            return "clear", f"refused ({status})"
        if 200 <= status < 300:
            return "broken", f"{what} ({status})"
        return "unclear", f"answered {status}"

    return judge


def _judge_file(status: int, headers: dict[str, str], data: bytes) -> tuple[str, str]:
    """A traversal or foreign file: its content is broken, a 4xx clear, anything else unclear."""
    if b"root:" in data or data[8:9] == b"{" and b"__metadata__" in data[:4096] or b'"train"' in data[:4096]:
        return "broken", f"served the file ({status}, {len(data)} bytes)"
    if 400 <= status < 500:
        return "clear", f"refused ({status})"
    return "unclear", f"answered {status} ({len(data)} bytes)"


def _judge_page(status: int, headers: dict[str, str], data: bytes) -> tuple[str, str]:
    return ("clear", "page served") if status == 200 else ("broken", f"the viewer's page answered {status}")


def _judge_origin(status: int, headers: dict[str, str], data: bytes) -> tuple[str, str]:
    allowed = headers.get("access-control-allow-origin", "")
    if allowed in ("*", "http://evil.example"):
        return "broken", f"allowed a foreign origin (Access-Control-Allow-Origin: {allowed})"
    return "clear", f"no foreign origin allowed ({status})"


def _viewer_start_runner(h: Hostile, case: Case) -> Outcome:
    started = time.perf_counter()
    port = h.viewer_server()
    if port is None:
        return h.viewer_failure or Outcome(verdict="broken", reason="the viewer did not serve")
    return Outcome(rc=0, served=True, seconds=round(time.perf_counter() - started, 2), first_line=f"serving on port {port}")


def _viewer_stop_runner(h: Hostile, case: Case) -> Outcome:
    if h.viewer_server() is None:
        return h.viewer_failure or Outcome(verdict="broken", reason="the viewer did not serve")
    outcome = h.stop_viewer()
    assert outcome is not None
    left = sorted(p.name for p in h.viewer_tmp.glob("tensorfields*"))
    if outcome.timed_out or outcome.notes:
        outcome.verdict, outcome.reason = "broken", "; ".join(outcome.notes) or "did not stop"
        return outcome
    stopped = f"stopped on Ctrl-C (exit {outcome.rc})"
    outcome.rc = 0  # ending on Ctrl-C, even by the signal itself, is what Ctrl-C asks for
    if left:
        outcome.verdict, outcome.reason = "broken", f"{stopped}, but left temporary folders: {', '.join(left)}"
    else:
        outcome.verdict, outcome.reason = "clear", f"{stopped}, no temporary folders left"
    return outcome


def _training_started(child: Child) -> bool:
    return "parameters, grid" in child.stdout() or child.finished()


def _resume_argv(h: Hostile, out: Path, budget: float) -> list[str]:
    return ["train", "--data", str(h.scene), "--out", str(out), "--resume", "--budget", f"{budget:.1f}", *GRID]


def _check_resumed(h: Hostile, out: Path, outcome: Outcome, iteration: int) -> None:
    """Mark `outcome` (of a --resume) broken when it did not continue from `iteration`."""
    if outcome.rc != 0:
        return
    metrics = out / "metrics.json"
    if iteration > 0 and "resumed at iteration" not in outcome.stdout:
        outcome.verdict, outcome.reason = "broken", f"--resume did not continue from iteration {iteration}"
    elif not metrics.is_file() or json.loads(metrics.read_text()).get("iterations", -1) < iteration:
        outcome.verdict, outcome.reason = "broken", f"--resume lost iterations (the checkpoint had {iteration})"
    elif _orphans(out):
        outcome.verdict, outcome.reason = "broken", f"orphaned temporary files left: {', '.join(_orphans(out))}"


def _fault_kill_after_checkpoint(h: Hostile, case: Case) -> Outcome:
    """kill -9 a run 1 s after its first checkpoint; --resume must continue from it, having lost
    no more than one checkpoint interval."""
    out = h.case_dir(case.id) / "out"
    every = ["--checkpoint-every", "3"] if h.has_flag("train", "--checkpoint-every") else []
    interval = 3.0 if every else 60.0
    child = h.start(["train", "--data", str(h.scene), "--out", str(out), "--budget", "400", *GRID, *every], case.id)
    checkpoint = out / CHECKPOINT
    _wait_until(lambda: checkpoint.is_file() or child.finished(), interval + 90)
    if child.finished():
        outcome = child.outcome()
        outcome.verdict, outcome.reason = "broken", "the run ended before its first checkpoint"
        return outcome
    if not checkpoint.is_file():
        child.kill()
        return Outcome(rc=None, verdict="broken", reason=f"no checkpoint within {interval + 90:.0f} s", stderr=child.stderr())
    time.sleep(1.0)
    lost = time.time() - checkpoint.stat().st_mtime
    child.kill()
    try:
        state = _header_state(checkpoint)
    except Exception as error:
        return Outcome(rc=None, verdict="broken", reason=f"the checkpoint is unreadable after kill -9: {error}")
    iteration, seconds = int(state.get("iteration", 0)), float(state.get("train_seconds", 0.0))
    outcome = h.cli([*_resume_argv(h, out, seconds + 2.0), *every], f"{case.id}-resume", 150)
    outcome.notes.append(f"killed {lost:.1f} s after the checkpoint (iteration {iteration}, {seconds:.1f} s of training; interval {interval:.0f} s)")
    _check_resumed(h, out, outcome, iteration)
    if outcome.verdict is None and lost > interval + 5:
        outcome.verdict, outcome.reason = "broken", f"lost {lost:.0f} s, more than one checkpoint interval ({interval:.0f} s)"
    return outcome


def _fault_kill_at(delay: float | None) -> Callable[[Hostile, Case], Outcome]:
    """kill -9 a run `delay` s after it starts (None: while Ctrl-C saves its checkpoint), then
    --resume: it must start or continue cleanly and leave no temporary files."""

    def run(h: Hostile, case: Case) -> Outcome:
        out = h.case_dir(case.id) / "out"
        child = h.start(["train", "--data", str(h.scene), "--out", str(out), "--budget", "400", *GRID], case.id)
        note = ""
        if delay is not None:
            time.sleep(delay)
            note = f"killed {delay:.1f} s after the start"
        else:
            _wait_until(lambda: _training_started(child), 90)
            time.sleep(1.5)
            child.send(signal.SIGINT)
            seen = _wait_until(lambda: bool(_orphans(out)) or child.finished(), 10, step=0.001) and bool(_orphans(out))
            note = "killed while Ctrl-C wrote the checkpoint (temporary file seen)" if seen else "killed after Ctrl-C (no temporary file seen)"
        if child.finished():
            note += f"; it had already exited ({child.outcome().rc})"
        child.kill()
        checkpoint = out / CHECKPOINT
        iteration, seconds = 0, 0.0
        if checkpoint.is_file():
            try:
                state = _header_state(checkpoint)
                iteration, seconds = int(state.get("iteration", 0)), float(state.get("train_seconds", 0.0))
            except Exception as error:
                return Outcome(rc=None, verdict="broken", reason=f"a checkpoint unreadable after kill -9: {error}")
        outcome = h.cli(_resume_argv(h, out, seconds + 2.0), f"{case.id}-resume", 150)
        outcome.notes.append(note)
        _check_resumed(h, out, outcome, iteration)
        return outcome

    return run


def _fault_signal(number: signal.Signals, name: str) -> Callable[[Hostile, Case], Outcome]:
    """Signal `number` (`name`: Ctrl-C, SIGTERM, ...) to a training run: one line saying the
    checkpoint was saved; then --resume continues from it."""

    def run(h: Hostile, case: Case) -> Outcome:
        out = h.case_dir(case.id) / "out"
        child = h.start(["train", "--data", str(h.scene), "--out", str(out), "--budget", "400", *GRID], case.id)
        _wait_until(lambda: _training_started(child), 90)
        time.sleep(2.0)
        child.send(number)
        if not child.wait(60):
            child.kill()
            outcome = child.outcome(timed_out=True)
            outcome.reason = f"{name} did not stop the run within 60 s"
            return outcome
        outcome = child.outcome()
        checkpoint = out / CHECKPOINT
        if not checkpoint.is_file():
            outcome.verdict, outcome.reason = "broken", f"{name} saved no checkpoint"
            return outcome
        state = _header_state(checkpoint)
        resumed = h.cli(_resume_argv(h, out, float(state.get("train_seconds", 0.0)) + 2.0), f"{case.id}-resume", 150)
        _check_resumed(h, out, resumed, int(state.get("iteration", 0)))
        if resumed.rc != 0 or resumed.verdict is not None:
            first = (message_lines(resumed.stderr) or [""])[0]
            outcome.verdict, outcome.reason = "broken", resumed.reason or f"--resume after {name} failed (exit {resumed.rc}): {first}"
        return outcome

    return run


def _fault_two_runs(h: Hostile, case: Case) -> Outcome:
    """A second train on the --out of a running one must refuse, and the first must go on."""
    out = h.case_dir(case.id) / "out"
    first = h.start(["train", "--data", str(h.scene), "--out", str(out), "--budget", "400", *GRID], case.id)
    _wait_until(lambda: _training_started(first), 90)
    outcome = h.cli(case.argv, f"{case.id}-second", case.timeout)
    alive = not first.finished()
    first.kill()
    if not alive:
        outcome.verdict, outcome.reason = "broken", f"the first run died while the second ran (exit {first.outcome().rc})"
    return outcome


def _fault_full_disk(fsize: int, keep_checkpoint: bool) -> Callable[[Hostile, Case], Outcome]:
    """The case's argv under RLIMIT_FSIZE (writes beyond `fsize` bytes fail, as on a full disk);
    no temporary files may remain, and with `keep_checkpoint` the run's checkpoint must be intact."""

    def run(h: Hostile, case: Case) -> Outcome:
        out = h.case_dir(case.id) / "out"
        before = _digest(out / CHECKPOINT)
        outcome = h.cli(case.argv, case.id, case.timeout, fsize=fsize)
        if out.is_dir() and _orphans(out):
            outcome.verdict, outcome.reason = "broken", f"orphaned temporary files left: {', '.join(_orphans(out))}"
        elif keep_checkpoint and _digest(out / CHECKPOINT) != before:
            try:
                _read_checkpoint(out / CHECKPOINT)
                outcome.notes.append("the checkpoint changed but still reads")
            except Exception:
                outcome.verdict, outcome.reason = "broken", "the run's checkpoint was damaged"
        return outcome

    return run


def _port_in_use_runner(h: Hostile, case: Case) -> Outcome:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        case.argv[case.argv.index("--port") + 1] = str(port)
        case.about.append(str(port))
        return _serve_runner(h, case)


# --- the catalogue --------------------------------------------------------------------------


def _edit(path: Path, change: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
    tensors, header = _read_checkpoint(path)
    change(tensors, header or {})
    _write_checkpoint(path, tensors, header)


def catalogue(h: Hostile) -> list[Case]:
    """Every case, in running order within its class (see the module docstring)."""
    cases: list[Case] = []
    scene, run, slim = str(h.scene), str(h.run), str(h.slim)

    def add(case: Case) -> None:
        assert case.kind in KINDS and case.expect in EXPECTS, case.id
        cases.append(case)

    # -- scene files: train on a broken copy of the sphere scene ---------------------------
    def scene_case(case_id: str, note: str, mutate: Callable[[Path], str | None], timeout: float = 60, command: str = "train") -> None:
        folder = h.case_dir(case_id) / "scene"
        target = [str(folder)]

        def setup() -> None:
            shutil.copytree(h.scene, folder)
            named = mutate(folder)
            if named:
                target.append(str(folder / named))

        if command == "train":
            argv = ["train", "--data", str(folder), "--out", str(h.case_dir(case_id) / "out"), "--iters", "5", *GRID]
        else:
            argv = ["eval", run, "--data", str(folder)]
        add(Case(case_id, "scene", argv, "error", note, target, timeout, ("scene", "run") if command == "eval" else ("scene",), setup))

    def transforms(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], str]:
        def mutate(folder: Path) -> str:
            meta = json.loads((folder / "transforms.json").read_text())
            change(meta)
            (folder / "transforms.json").write_text(json.dumps(meta))
            return "transforms.json"

        return mutate

    def write(name: str, data: bytes) -> Callable[[Path], str]:
        def mutate(folder: Path) -> str:
            (folder / name).write_bytes(data)
            return name

        return mutate

    def remove(name: str) -> Callable[[Path], str]:
        def mutate(folder: Path) -> str:
            (folder / name).unlink()
            return name

        return mutate

    def small_image(name: str) -> Callable[[Path], str]:
        def mutate(folder: Path) -> str:
            import imageio.v3 as iio
            import numpy as np

            iio.imwrite(folder / name, np.full((15, 20, 4), 200, np.uint8))
            return name

        return mutate

    def set_pose(index: int, value: Any) -> Callable[[dict[str, Any]], None]:
        def change(meta: dict[str, Any]) -> None:
            meta["frames"][index]["transform_matrix"] = value

        return change

    def nan_pose(meta: dict[str, Any]) -> None:
        meta["frames"][3]["transform_matrix"][0][3] = float("nan")

    scene_case("scene-missing-transforms", "photos without poses: SfM on 12 textureless 40x30 views cannot work; a clear error", remove("transforms.json"), timeout=150)
    scene_case("scene-transforms-not-json", "transforms.json is not JSON", write("transforms.json", b'{"frames": [ oops'))
    scene_case("scene-transforms-zero-bytes", "transforms.json is empty", write("transforms.json", b""))
    scene_case("scene-transforms-wrong-structure", "transforms.json's frames is a string", transforms(lambda m: m.update(frames="frame_000.png")))
    scene_case("scene-no-frames", "transforms.json lists no frames", transforms(lambda m: m.update(frames=[])))
    scene_case("scene-one-frame", "a single frame: nothing to hold out or nothing to train on", transforms(lambda m: m.update(frames=m["frames"][:1])))
    scene_case("scene-no-intrinsics", "transforms.json without fl_x/fl_y/camera_angle_x", transforms(lambda m: [m.pop("fl_x"), m.pop("fl_y")]))
    scene_case("scene-focal-zero", "fl_x = fl_y = 0", transforms(lambda m: m.update(fl_x=0.0, fl_y=0.0)))
    scene_case("scene-frame-without-pose", "a frame without transform_matrix", transforms(lambda m: m["frames"][2].pop("transform_matrix")))
    scene_case("scene-pose-nan", "NaN in a pose", transforms(nan_pose))
    scene_case("scene-pose-wrong-shape", "a 3x3 pose", transforms(set_pose(4, [[1, 0, 0], [0, 1, 0], [0, 0, 1]])))
    scene_case("scene-pose-singular", "an all-zero pose", transforms(set_pose(5, [[0.0] * 4 for _ in range(4)])))
    scene_case("scene-image-zero-bytes", "a zero-byte image", write("frame_004.png", b""))
    scene_case("scene-image-missing", "an image the frames list but the folder lacks", remove("frame_005.png"))
    scene_case("scene-image-wrong-size", "one image 20x15 among 40x30", small_image("frame_006.png"))
    scene_case("scene-image-not-an-image", "a text file named .png", write("frame_007.png", b"this is not a PNG\n"))
    scene_case("scene-eval-zero-byte-image", "eval --data on a scene with a zero-byte image", write("frame_001.png", b""), command="eval")

    def data_case(case_id: str, note: str, data: Callable[[], Path], setup: Callable[[], None] | None = None, timeout: float = 60) -> None:
        path = data()
        argv = ["train", "--data", str(path), "--out", str(h.case_dir(case_id) / "out"), "--iters", "5", *GRID]
        add(Case(case_id, "scene", argv, "error", note, [str(path)], timeout, ("scene",), setup))

    fake_video = h.case_dir("scene-text-named-mp4") / "clip.mp4"
    data_case("scene-text-named-mp4", "a text file named .mp4", lambda: fake_video, lambda: _mkfile(fake_video, b"not a video\n"))
    empty = h.case_dir("scene-empty-folder") / "empty"
    data_case("scene-empty-folder", "an empty folder", lambda: empty, lambda: empty.mkdir(parents=True))
    data_case("scene-nonexistent", "a path that does not exist", lambda: h.root / "no" / "such" / "scene")
    notes = h.case_dir("scene-not-a-scene-file") / "notes.txt"
    data_case("scene-not-a-scene-file", "a text file as --data", lambda: notes, lambda: _mkfile(notes, b"hello\n"))

    # -- checkpoints: a copy of the tiny run with its checkpoint edited --------------------
    def ckpt_case(case_id: str, note: str, edit: Callable[[Path], None], command: str = "eval", source: str = "run", expect: str = "error", timeout: float = 60) -> None:
        folder = h.case_dir(case_id) / "run"
        path = folder / CHECKPOINT

        def setup() -> None:
            h.copy_run(folder, h.slim if source == "slim" else h.run)
            edit(path)

        argv = {
            "eval": ["eval", str(folder)],
            "resume": ["train", "--data", scene, "--out", str(folder), "--resume", "--iters", str(TINY_ITERS + 10), *GRID],
            "render": ["render", str(folder), "--orbit", "2", "--out", str(h.case_dir(case_id) / "orbit.mp4")],
            "export": ["export-mesh", str(folder), "--out", str(h.case_dir(case_id) / "mesh.ply"), "--resolution", "32"],
            "view": ["view", str(folder), "--port", str(_free_port())],
        }[command]
        needs = ("run", "slim") if source == "slim" else ("run",)
        runner = _serve_runner if command == "view" else None
        about = [str(path)] if command == "resume" else [str(folder), str(path)]  # a resume names its folder anyway
        add(Case(case_id, "checkpoint", argv, expect, note, about, timeout, needs, setup, runner=runner, serial=command == "view"))

    def tensors_edit(change: Callable[[dict[str, Any], dict[str, Any]], None]) -> Callable[[Path], None]:
        return lambda path: _edit(path, change)

    def header_edit(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
        return lambda path: _edit(path, lambda tensors, header: change(header))

    def raw(data: Callable[[Path], bytes]) -> Callable[[Path], None]:
        return lambda path: path.write_bytes(data(path))

    def set_tensor(pick: Callable[[dict[str, Any]], str], value: Callable[[Any], Any]) -> Callable[[Path], None]:
        def change(tensors: dict[str, Any], header: dict[str, Any]) -> None:
            key = pick(tensors)
            tensors[key] = value(tensors[key])

        return tensors_edit(change)

    def drop_tensor(pick: Callable[[dict[str, Any]], str]) -> Callable[[Path], None]:
        return tensors_edit(lambda tensors, header: tensors.pop(pick(tensors)))

    def nan_like(v: Any) -> Any:
        import numpy as np

        return np.full_like(v, np.nan)

    def grown(v: Any) -> Any:
        import numpy as np

        return np.zeros((*v.shape[:-1], v.shape[-1] + 3), v.dtype)

    def as_int(v: Any) -> Any:
        import numpy as np

        return (v * 1000).astype(np.int32)

    def vector(v: Any) -> Any:
        import numpy as np

        return np.array([1.0, 2.0], np.float32)

    def moment(v: Any) -> Any:
        import numpy as np

        return np.zeros((3,), np.float32)

    def pickled(path: Path) -> bytes:
        return pickle.dumps({"field.weights": list(range(10))})

    def config_set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
        return lambda header: header["field_config"].__setitem__(key, value)

    def invert_box(tensors: dict[str, Any], header: dict[str, Any]) -> None:
        lo, hi = header["field_config"]["aabb"]
        header["field_config"]["aabb"] = [hi, lo]
        tensors["grid.aabb"] = tensors["grid.aabb"][::-1].copy()
        if "field.aabb" in tensors:
            tensors["field.aabb"] = tensors["field.aabb"][::-1].copy()

    def small_grid(tensors: dict[str, Any], header: dict[str, Any]) -> None:
        import numpy as np

        tensors["grid.occupied"] = np.zeros((4, 4, 4), bool)

    def folder_instead(path: Path) -> None:
        path.unlink()
        path.mkdir()
        (path / "x").write_text("x")

    def no_header(path: Path) -> None:
        tensors, _ = _read_checkpoint(path)
        _write_checkpoint(path, tensors, None)

    def bad_header(path: Path) -> None:
        tensors, _ = _read_checkpoint(path)
        _write_checkpoint(path, tensors, None, raw_header="{not json")

    factor, exp_avg = _factor_key, (lambda t: _optim_key(t, ".exp_avg"))
    ckpt_case("ckpt-adam-moment-wrong-shape", "--resume with an Adam moment of the wrong size", set_tensor(exp_avg, moment), "resume")
    ckpt_case("ckpt-adam-step-not-scalar", "--resume with a non-scalar Adam step", set_tensor(lambda t: _optim_key(t, ".step"), vector), "resume")
    ckpt_case("ckpt-adam-moment-missing", "--resume with an Adam exp_avg_sq missing", drop_tensor(lambda t: _optim_key(t, ".exp_avg_sq")), "resume")
    ckpt_case("ckpt-adam-moment-nan", "--resume with NaN in an Adam moment", set_tensor(lambda t: _optim_key(t, ".exp_avg_sq"), nan_like), "resume")
    ckpt_case("ckpt-optimizer-groups-missing", "--resume with the header's optimizer groups cut to one", header_edit(lambda hd: hd.update(optimizer_groups=hd["optimizer_groups"][:1])), "resume")
    ckpt_case("ckpt-train-state-bad", "--resume with train_state iteration 'many'", header_edit(lambda hd: hd["train_state"].update(iteration="many")), "resume")
    ckpt_case("ckpt-field-tensor-missing", "a field factor missing", drop_tensor(factor))
    ckpt_case("ckpt-field-tensor-extra", "an extra field tensor", tensors_edit(lambda t, hd: t.update({"field.bogus": t["grid.aabb"].copy()})))
    ckpt_case("ckpt-field-tensor-wrong-shape", "a field factor of the wrong shape", set_tensor(factor, grown))
    ckpt_case("ckpt-field-tensor-wrong-dtype", "a field factor stored as int32", set_tensor(factor, as_int))
    ckpt_case("ckpt-field-nan", "NaN factors: eval must not report PSNR nan", set_tensor(factor, nan_like))
    ckpt_case("ckpt-field-nan-render", "render a video of NaN factors", set_tensor(factor, nan_like), "render")
    ckpt_case("ckpt-field-nan-export", "export-mesh of NaN factors", set_tensor(factor, nan_like), "export")
    ckpt_case("ckpt-field-nan-view", "view NaN factors", set_tensor(factor, nan_like), "view", timeout=120)
    ckpt_case("ckpt-resolution-absurd", "the header declares a 3000^3 grid (about 7 GB of factors)", header_edit(config_set("resolution", [3000, 3000, 3000])))
    ckpt_case("ckpt-resolution-negative", "the header declares resolution [-5, 16, 16]", header_edit(config_set("resolution", [-5, 16, 16])))
    ckpt_case("ckpt-occupancy-absurd", "a compact checkpoint declaring a 3000^3 occupancy grid", header_edit(lambda hd: hd.update(grid_resolution=[3000, 3000, 3000])), source="slim")
    ckpt_case("ckpt-occupancy-wrong-shape", "the occupancy grid 4^3 beside a 128^3 density", tensors_edit(small_grid))
    ckpt_case("ckpt-box-inverted", "the box's min above its max", tensors_edit(invert_box))
    ckpt_case("ckpt-step-size-zero", "render step size 0 (an endless march)", header_edit(lambda hd: hd["render"].update(step_size=0.0)))
    ckpt_case("ckpt-newer-format", "format version 99", header_edit(lambda hd: hd.update(format_version=99)))
    ckpt_case("ckpt-newer-format-view", "view a format-99 checkpoint", header_edit(lambda hd: hd.update(format_version=99)), "view", timeout=120)
    ckpt_case("ckpt-unknown-field", "the header names field 'nope'", header_edit(lambda hd: hd.update(field="nope")))
    ckpt_case("ckpt-no-render-settings", "the header lacks render settings", header_edit(lambda hd: hd.pop("render")))
    ckpt_case("ckpt-header-not-json", "the tensorfields header is not JSON", bad_header)
    ckpt_case("ckpt-no-header", "a safetensors file without the tensorfields header", no_header)
    ckpt_case("ckpt-pickle", "a pickle named checkpoint.safetensors", raw(pickled))
    ckpt_case("ckpt-truncated", "the checkpoint cut in half", raw(lambda p: p.read_bytes()[: p.stat().st_size // 2]))
    ckpt_case("ckpt-zero-bytes", "a zero-byte checkpoint", raw(lambda p: b""))
    ckpt_case("ckpt-is-a-folder", "checkpoint.safetensors is a folder", folder_instead)
    ckpt_case("ckpt-compact-resume", "--resume from a compact (slim) checkpoint: resumes or says why not", lambda p: None, "resume", source="slim", expect="either")

    # -- run folders ------------------------------------------------------------------------
    def rf_case(case_id: str, note: str, argv: Callable[[Path], list[str]], prepare: Callable[[Path], None] | None = None, about: list[str] | None = None, expect: str = "error", check: Callable[[Path], Callable[[Outcome], tuple[str, str] | None]] | None = None, timeout: float = 60, needs: tuple[str, ...] = ("run",), copy: bool = True) -> None:
        folder = h.case_dir(case_id) / "run"

        def setup() -> None:
            if copy:
                h.copy_run(folder)
            if prepare is not None:
                prepare(folder)

        add(Case(case_id, "run-folder", argv(folder), expect, note, about if about is not None else [str(folder)], timeout, needs, setup, check(folder) if check else None))

    def config_text(text: str) -> Callable[[Path], None]:
        return lambda folder: (folder / "config.json").write_text(text)

    def config_change(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
        def prepare(folder: Path) -> None:
            config = json.loads((folder / "config.json").read_text())
            change(config)
            (folder / "config.json").write_text(json.dumps(config))

        return prepare

    def unchanged(folder: Path) -> Callable[[Outcome], tuple[str, str] | None]:
        def check(outcome: Outcome) -> tuple[str, str] | None:
            if _digest(folder / CHECKPOINT) != _digest(h.run / CHECKPOINT):
                return "broken", f"silently replaced the run in {folder}"
            return None

        return check

    config_path = lambda f: [str(f), str(f / "config.json")]  # noqa: E731
    rf_case("rf-eval-no-config", "eval a run folder without config.json", lambda f: ["eval", str(f)], lambda f: (f / "config.json").unlink(), config_path(h.case_dir("rf-eval-no-config") / "run"))
    rf_case("rf-render-no-config", "render a run folder without config.json", lambda f: ["render", str(f), "--orbit", "2", "--out", str(f.parent / "o.mp4")], lambda f: (f / "config.json").unlink(), config_path(h.case_dir("rf-render-no-config") / "run"))
    rf_case("rf-config-not-json", "config.json is not JSON", lambda f: ["eval", str(f)], config_text("{oops"), config_path(h.case_dir("rf-config-not-json") / "run"))
    rf_case("rf-config-zero-bytes", "config.json is empty", lambda f: ["eval", str(f)], config_text(""), config_path(h.case_dir("rf-config-zero-bytes") / "run"))
    rf_case("rf-config-a-list", "config.json is a JSON list", lambda f: ["eval", str(f)], config_text("[1, 2, 3]"), config_path(h.case_dir("rf-config-a-list") / "run"))
    rf_case("rf-config-no-scene", "config.json without its scene section (render)", lambda f: ["render", str(f), "--orbit", "2", "--out", str(f.parent / "o.mp4")], config_change(lambda c: c.pop("scene")), config_path(h.case_dir("rf-config-no-scene") / "run"))
    rf_case("rf-config-wrong-types", "config.json's train.downsample is 'fast'", lambda f: ["eval", str(f)], config_change(lambda c: c["train"].update(downsample="fast")), config_path(h.case_dir("rf-config-wrong-types") / "run"))
    rf_case("rf-config-cameras-wrong", "config.json's train_cameras is a string (render)", lambda f: ["render", str(f), "--orbit", "2", "--out", str(f.parent / "o.mp4")], config_change(lambda c: c["scene"].update(train_cameras="none")), config_path(h.case_dir("rf-config-cameras-wrong") / "run"))
    rf_case("rf-train-over-other-run", "train --out a folder holding a finished run, without --resume", lambda f: ["train", "--data", scene, "--out", str(f), "--iters", "5", *GRID], check=unchanged)
    rf_case("rf-resume-other-data", "--resume with another --data", lambda f: ["train", "--data", str(h.scene2), "--out", str(f), "--resume", "--iters", "40", *GRID], about=["--data", str(h.scene2), str(h.case_dir("rf-resume-other-data") / "run")], needs=("run", "scene2"))
    rf_case("rf-resume-other-field", "--resume with another --field", lambda f: ["train", "--data", scene, "--out", str(f), "--resume", "--iters", "40", "--field", "cp", *GRID], about=["--field", str(h.case_dir("rf-resume-other-field") / "run")])
    rf_case("rf-resume-other-downsample", "--resume with another --downsample", lambda f: ["train", "--data", scene, "--out", str(f), "--resume", "--iters", "40", "--downsample", "2", *GRID], about=["--downsample", str(h.case_dir("rf-resume-other-downsample") / "run")])
    rf_case("rf-slim-over-other-run", "slim --out a folder holding another run", lambda f: ["slim", run, "--rank", "4", "--out", str(f)], check=unchanged)
    rf_case("rf-slim-overwrite-other-run", "slim --overwrite a folder holding another run: replaces it", lambda f: ["slim", run, "--rank", "4", "--out", str(f), "--overwrite"], expect="success")
    rf_case("rf-slim-out-empty", "slim --out '' (the current folder)", lambda f: ["slim", run, "--rank", "4", "--out", ""], about=["--out"], copy=False)
    rf_case("rf-slim-into-itself", "slim --out the run being slimmed", lambda f: ["slim", str(f), "--rank", "4", "--out", str(f)], check=unchanged)
    rf_case("rf-eval-a-file", "eval a regular file", lambda f: ["eval", str(h.file)], about=[str(h.file)], needs=("file",), copy=False)

    def orphans(folder: Path) -> None:
        (folder / f".{CHECKPOINT}.k3j2l1.tmp").write_bytes(b"\0" * 1000)
        (folder / ".config.json.tmp").write_text("{")

    def no_orphans(folder: Path) -> Callable[[Outcome], tuple[str, str] | None]:
        return lambda outcome: ("broken", f"orphaned temporary files left: {', '.join(_orphans(folder))}") if _orphans(folder) else None

    rf_case("rf-orphaned-temp-files", "--resume in a folder with temporary files a kill -9 left: resumes and clears them", lambda f: ["train", "--data", scene, "--out", str(f), "--resume", "--iters", "35", *GRID], orphans, expect="success", check=no_orphans, timeout=90)

    # read-only places, simulated by a path under a regular file (root ignores permissions)
    under = str(h.file / "sub")
    under_file = [under, str(h.file)]
    for case_id, note, argv in [
        ("rf-train-out-under-file", "train --out under a regular file", ["train", "--data", scene, "--out", under, "--iters", "5", *GRID]),
        ("rf-train-out-is-file", "train --out a regular file", ["train", "--data", scene, "--out", str(h.file), "--iters", "5", *GRID]),
        ("rf-eval-json-under-file", "eval --json under a regular file", ["eval", run, "--json", under + "/eval.json"]),
        ("rf-eval-renders-under-file", "eval --renders under a regular file", ["eval", run, "--renders", under]),
        ("rf-render-out-under-file", "render --out under a regular file", ["render", run, "--orbit", "2", "--out", under + "/o.mp4"]),
        ("rf-export-out-under-file", "export-mesh --out under a regular file", ["export-mesh", run, "--out", under + "/m.ply", "--resolution", "32"]),
        ("rf-slim-out-under-file", "slim --out under a regular file", ["slim", run, "--rank", "4", "--out", under]),
    ]:
        add(Case(case_id, "run-folder", argv, "error", note, under_file, 60, ("run", "file", "scene")))
    add(Case("rf-train-out-empty", "run-folder", ["train", "--data", scene, "--out", "", "--iters", "5", *GRID], "error", "train --out '' (the current folder)", ["--out"], 60, ("scene",)))

    # -- flags ------------------------------------------------------------------------------
    def flag_case(case_id: str, argv: list[str], flag: str, note: str, needs: tuple[str, ...] = (), timeout: float = 40, expect: str = "error", setup: Callable[[], None] | None = None) -> None:
        add(Case(case_id, "flag", argv, expect, note, [flag], timeout, needs, setup))

    def train_argv(case_id: str, *extra: str, data: str | None = None) -> list[str]:
        return ["train", "--data", data or scene, "--out", str(h.case_dir(case_id) / "out"), "--iters", "5", *GRID, *extra]

    for flag, values in {
        "--iters": ["-1", "0", "nan", "1000000000000"],
        "--budget": ["-1", "0", "nan", "inf"],
        "--downsample": ["0", "nan", "1e6"],
        "--grid-init": ["-1", "1", "100000"],
        "--batch-size": ["-1", "10000000000"],
        "--cone-angle": ["-1"],
        "--seed": ["100000000000000000000000"],
        "--checkpoint-every": ["-1", "nan"],
    }.items():
        for value in values:
            case_id = f"flag-train{flag[1:]}-{_slug(value)}"
            flag_case(case_id, train_argv(case_id, flag, value), flag, f"train {flag} {value}", ("scene",))
    case_id = "flag-train-grid-final-below-init"
    flag_case(case_id, train_argv(case_id, "--grid-init", "16", "--grid-final", "8"), "--grid-final", "train --grid-final 8 below --grid-init 16", ("scene",))
    case_id = "flag-train-upsilon-negative"
    flag_case(case_id, train_argv(case_id, "--slimmable", "--upsilon", "-1"), "--upsilon", "train --slimmable --upsilon -1", ("scene",))
    case_id = "flag-train-eta-negative"
    flag_case(case_id, train_argv(case_id, "--slimmable", "--eta", "-1"), "--eta", "train --slimmable --eta -1", ("scene",))
    for value in ["0", "-1"]:
        case_id = f"flag-train-fps-{_slug(value)}"
        flag_case(case_id, train_argv(case_id, "--fps", value, data=str(h.video)), "--fps", f"train --data a video --fps {value}", ("scene", "video"), timeout=60)
    for flag, value in [("--field", "nope"), ("--device", "nope"), ("--decoder", "nope")]:
        case_id = f"flag-train{flag[1:]}-{value}"
        flag_case(case_id, train_argv(case_id, flag, value), flag, f"train {flag} {value}", ("scene",))

    for flag, value in [("--downsample", "0"), ("--downsample", "1e6"), ("--ranks", "0"), ("--ranks", "abc"), ("--ranks", "999"), ("--split", "nope")]:
        flag_case(f"flag-eval{flag[1:]}-{_slug(value)}", ["eval", run, flag, value], flag, f"eval {flag} {value}", ("run",))

    def render_argv(case_id: str, *extra: str, out: str | None = None) -> list[str]:
        return ["render", run, "--orbit", "2", "--out", out if out is not None else str(h.case_dir(case_id) / "orbit.mp4"), *extra]

    for flag, value in [("--orbit", "0"), ("--orbit", "10000000"), ("--fps", "0")]:
        case_id = f"flag-render{flag[1:]}-{_slug(value)}"
        flag_case(case_id, render_argv(case_id, flag, value), flag, f"render {flag} {value}", ("run",))
    for suffix in [".txt", ""]:
        case_id = f"flag-render-out-{suffix[1:] or 'no-extension'}"
        out = str(h.case_dir(case_id) / f"orbit{suffix}")
        flag_case(case_id, render_argv(case_id, out=out), "--out", f"render --out orbit{suffix} (not .mp4/.gif)", ("run",))
        cases[-1].about.append(out)
    flag_case("flag-render-out-empty", render_argv("flag-render-out-empty", out=""), "--out", "render --out ''", ("run",))

    def export_argv(case_id: str, *extra: str, out: str | None = None) -> list[str]:
        return ["export-mesh", run, "--out", out if out is not None else str(h.case_dir(case_id) / "mesh.ply"), "--resolution", "32", *extra]

    for flag, value in [("--resolution", "0"), ("--resolution", "100000"), ("--level", "-0.5"), ("--level", "1.5"), ("--level", "nan"), ("--faces", "-1"), ("--device", "nope")]:
        case_id = f"flag-export{flag[1:]}-{_slug(value)}"
        flag_case(case_id, export_argv(case_id, flag, value), flag, f"export-mesh {flag} {value}", ("run",))
    case_id = "flag-export-tsdf-orbit-negative"
    flag_case(case_id, export_argv(case_id, "--method", "tsdf", "--orbit", "-1"), "--orbit", "export-mesh --method tsdf --orbit -1", ("run",))
    case_id = "flag-export-tsdf-level-2"
    flag_case(case_id, export_argv(case_id, "--method", "tsdf", "--level", "2"), "--level", "export-mesh --method tsdf --level 2", ("run",))
    for suffix in [".stl", ""]:
        case_id = f"flag-export-out-{suffix[1:] or 'no-extension'}"
        out = str(h.case_dir(case_id) / f"mesh{suffix}")
        flag_case(case_id, export_argv(case_id, out=out), "--out", f"export-mesh --out mesh{suffix} (not .ply/.obj/.glb)", ("run",))
        cases[-1].about.append(out)

    for value in ["0", "-1", "1000"]:
        case_id = f"flag-slim-rank-{_slug(value)}"
        flag_case(case_id, ["slim", run, "--rank", value, "--out", str(h.case_dir(case_id) / "out")], "--rank", f"slim --rank {value}", ("run",))

    for flag, value in [("--max-size", "0"), ("--threads", "0"), ("--matcher", "nope")]:
        case_id = f"flag-colmap{flag[1:]}-{_slug(value)}"
        photos = h.case_dir(case_id) / "photos"
        flag_case(case_id, ["colmap", str(photos), flag, value], flag, f"colmap {flag} {value}", ("photos",), 90, setup=lambda photos=photos: shutil.copytree(h.photos, photos))
    nowhere = str(h.root / "no" / "photos")
    add(Case("flag-colmap-nonexistent", "flag", ["colmap", nowhere], "error", "colmap on a path that does not exist", [nowhere], 60))

    def bench_case(case_id: str, argv: list[str], flag: str, needs: tuple[str, ...] = (), timeout: float = 45) -> None:
        flag_case(case_id, ["bench", *argv], flag, "bench " + " ".join(argv[:1] + argv[-2:]), needs, timeout)

    for value in ["-1", "nan"]:
        case_id = f"flag-bench-train-budget-{_slug(value)}"
        bench_case(case_id, ["train", "--data", scene, "--out", str(h.case_dir(case_id) / "out"), *GRID, "--eval-views", "2", "--budget", value], "--budget", ("scene",))
    march = ["march", "--rays", "512", "--resolution", "32", "--repeats", "1"]
    for flag, value in [("--rays", "0"), ("--rays", "10000000000"), ("--resolution", "0"), ("--repeats", "0")]:
        bench_case(f"flag-bench-march{flag[1:]}-{_slug(value)}", [*march, flag, value], flag)
    bench_case("flag-bench-factors-repeats-0", ["factors", "--repeats", "0"], "--repeats")
    bench_render = ["render", "--run", run, "--frames", "1", "--size", "32"]
    for flag, value in [("--size", "0"), ("--size", "1000000"), ("--frames", "0")]:
        bench_case(f"flag-bench-render{flag[1:]}-{_slug(value)}", [*bench_render, flag, value], flag, ("run",))
    case_id = "flag-bench-slim-ranks-0"
    bench_case(case_id, ["slim", "--data", scene, "--downsample", "1", "--budget", "2", "--out", str(h.case_dir(case_id) / "out"), "--ranks", "0"], "--ranks", ("scene",), timeout=60)
    case_id = "flag-bench-mesh-resolution-0"
    bench_case(case_id, ["mesh", "--budget", "2", "--out", str(h.case_dir(case_id) / "out"), "--resolution", "0"], "--resolution", timeout=60)
    case_id = "flag-demo-budget-negative"
    flag_case(case_id, ["demo", "--out", str(h.case_dir(case_id) / "out"), "--budget", "-1"], "--budget", "demo --budget -1", timeout=60)

    # -- faults -----------------------------------------------------------------------------
    def fault(case_id: str, note: str, argv: list[str], runner: Callable[[Hostile, Case], Outcome], expect: str, about: list[str] | None = None, timeout: float = 120, needs: tuple[str, ...] = ("scene",), setup: Callable[[], None] | None = None) -> None:
        add(Case(case_id, "fault", argv, expect, note, about or [], timeout, needs, setup, runner=runner, serial=True))

    out_of = lambda case_id: str(h.case_dir(case_id) / "out")  # noqa: E731
    budget_argv = lambda case_id: ["train", "--data", scene, "--out", out_of(case_id), "--budget", "400", *GRID]  # noqa: E731
    fault("fault-kill9-after-checkpoint", "kill -9 a --budget 400 run 1 s after its first checkpoint, then --resume: continues from it, at most one checkpoint interval lost", budget_argv("fault-kill9-after-checkpoint"), _fault_kill_after_checkpoint, "success", timeout=300)
    fault("fault-kill9-at-start", "kill -9 a run 2 s after it starts (before any checkpoint), then --resume: starts cleanly", budget_argv("fault-kill9-at-start"), _fault_kill_at(2.0), "success")
    fault("fault-kill9-during-save", "Ctrl-C a run, kill -9 it while the checkpoint is written, then --resume: works, no temporary files left", budget_argv("fault-kill9-during-save"), _fault_kill_at(None), "success")
    fault("fault-ctrl-c-then-resume", "Ctrl-C: one line saying the checkpoint is saved; --resume continues", budget_argv("fault-ctrl-c-then-resume"), _fault_signal(signal.SIGINT, "Ctrl-C"), "error", ["resume"])
    fault("fault-sigterm-then-resume", "kill (SIGTERM): saves as Ctrl-C does; --resume continues", budget_argv("fault-sigterm-then-resume"), _fault_signal(signal.SIGTERM, "SIGTERM"), "error", ["resume", "SIGTERM"])
    fault("fault-sighup-then-resume", "the terminal closes (SIGHUP): saves as Ctrl-C does; --resume continues", budget_argv("fault-sighup-then-resume"), _fault_signal(signal.SIGHUP, "SIGHUP"), "error", ["resume", "SIGHUP"])
    two = "fault-two-runs-one-out"
    fault(two, "a second train on the --out of a running one: refuses, and the first goes on", ["train", "--data", scene, "--out", out_of(two), "--iters", "5", *GRID], _fault_two_runs, "error", [out_of(two)], timeout=90)
    full = "fault-full-disk-train"
    fault(full, "train with writes limited to 256 KB (full disk): a clear error, no temporary files", ["train", "--data", scene, "--out", out_of(full), "--iters", "5", *GRID], _fault_full_disk(256 * 1024, False), "error", [out_of(full)], timeout=90)
    full_resume = "fault-full-disk-resume"
    fault(full_resume, "--resume with writes limited to 256 KB: a clear error, the old checkpoint intact", ["train", "--data", scene, "--out", out_of(full_resume), "--resume", "--iters", "40", *GRID], _fault_full_disk(256 * 1024, True), "error", [out_of(full_resume)], timeout=90, needs=("scene", "run"), setup=lambda: h.copy_run(Path(out_of(full_resume))))
    full_mesh = "fault-full-disk-mesh"
    mesh = str(h.case_dir(full_mesh) / "mesh.ply")
    fault(full_mesh, "export-mesh with writes limited to 2 KB: a clear error naming the mesh, no file left", ["export-mesh", run, "--resolution", "48", "--level", "0.001", "--out", mesh], _fault_full_disk(2 * 1024, False), "error", [mesh, str(Path(mesh).parent)], timeout=90, needs=("run",))
    full_render = "fault-full-disk-render"
    video = str(h.case_dir(full_render) / "orbit.mp4")
    fault(full_render, "render with writes limited to 2 KB (a 40-frame video is ~4 KB): a clear error naming the video", ["render", run, "--orbit", "40", "--out", video], _fault_full_disk(2 * 1024, False), "error", [video, str(Path(video).parent)], timeout=90, needs=("run",))

    # -- viewer -----------------------------------------------------------------------------
    def viewer(case_id: str, note: str, argv: list[str], runner: Callable[[Hostile, Case], Outcome], expect: str = "error", about: list[str] | None = None, timeout: float = 120, needs: tuple[str, ...] = ("run",), setup: Callable[[], None] | None = None) -> None:
        add(Case(case_id, "viewer", argv, expect, note, about or [], timeout, needs, setup, runner=runner, serial=True))

    viewer("viewer-starts", "view the tiny run: serves", ["view", run, "--port", "PORT"], _viewer_start_runner, "success", timeout=150)
    http_cases: list[tuple[str, str, str, str | Callable[[Hostile], str], Callable[..., tuple[str, str]], dict[str, str] | None, bytes | None]] = [
        ("viewer-home-page", "GET / (the page still loads)", "GET", "/", _judge_page, None, None),
        ("viewer-foreign-host", "GET / with Host: evil.example (DNS rebinding)", "GET", "/", _judge_rejected("served a foreign Host"), {"Host": "evil.example"}, None),
        ("viewer-foreign-host-config", "GET /config with Host: evil.example", "GET", "/config", _judge_rejected("served a foreign Host"), {"Host": "evil.example"}, None),
        ("viewer-foreign-origin", "GET /config with Origin: http://evil.example (CORS)", "GET", "/config", _judge_origin, {"Origin": "http://evil.example"}, None),
        ("viewer-upload", "POST /gradio_api/upload (the viewer takes no files)", "POST", "/gradio_api/upload", _judge_rejected("accepted an upload"), {"Content-Type": "multipart/form-data; boundary=XyZ"}, _multipart()),
        ("viewer-upload-root", "POST /upload", "POST", "/upload", _judge_rejected("accepted an upload"), {"Content-Type": "multipart/form-data; boundary=XyZ"}, _multipart()),
        ("viewer-file-traversal", "GET /file=../../etc/passwd", "GET", "/file=../../../../../../etc/passwd", _judge_file, None, None),
        ("viewer-api-file-traversal", "GET /gradio_api/file=../../etc/passwd", "GET", "/gradio_api/file=../../../../../../etc/passwd", _judge_file, None, None),
        ("viewer-api-file-absolute", "GET /gradio_api/file=/etc/passwd", "GET", "/gradio_api/file=/etc/passwd", _judge_file, None, None),
        ("viewer-api-file-encoded", "GET /gradio_api/file=..%2F..%2Fetc%2Fpasswd", "GET", "/gradio_api/file=..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd", _judge_file, None, None),
        ("viewer-api-file-config", "GET /gradio_api/file=<run>/config.json (not a served file)", "GET", lambda h: f"/gradio_api/file={h.run}/config.json", _judge_file, None, None),
        ("viewer-static-traversal", "GET /static/../../../../etc/passwd", "GET", "/static/../../../../../../etc/passwd", _judge_file, None, None),
        ("viewer-assets-traversal", "GET /assets/..%2f..%2fetc/passwd", "GET", "/assets/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", _judge_file, None, None),
    ]
    for case_id, note, method, path, judge, headers, body in http_cases:
        shown = path if isinstance(path, str) else path(h)
        described = [method, shown] + [f"{k}: {v}" for k, v in (headers or {}).items() if k != "Content-Type"]
        viewer(case_id, note, described, _http_runner(method, path, judge, headers, body), "either", timeout=60)
    viewer("viewer-ctrl-c-cleans-up", "Ctrl-C the viewer: it stops and leaves no temporary folders", ["SIGINT", "view"], _viewer_stop_runner, "either", timeout=60)

    def view_case(case_id: str, note: str, prepare: Callable[[Path], None] | None, expect: str, about: Callable[[Path], list[str]], port: str | None = None, extra: tuple[str, ...] = (), runner: Callable[[Hostile, Case], Outcome] = _serve_runner) -> None:
        folder = h.case_dir(case_id) / "run"

        def setup() -> None:
            h.copy_run(folder)
            if prepare is not None:
                prepare(folder)

        argv = ["view", str(folder), "--port", port or str(_free_port()), *extra]
        viewer(case_id, note, argv, runner, expect, about(folder), setup=setup)

    view_case("view-metrics-corrupt", "view a run whose metrics.json is not JSON: serves, or names metrics.json", lambda f: (f / "metrics.json").write_text("{oops"), "either", lambda f: [str(f / "metrics.json")])
    view_case("view-metrics-a-list", "view a run whose metrics.json is a list: serves, or names metrics.json", lambda f: (f / "metrics.json").write_text("[1, 2]"), "either", lambda f: [str(f / "metrics.json")])
    view_case("view-config-wrong-structure", "view a run whose config.json lacks its scene", config_change(lambda c: c.pop("scene")), "error", lambda f: [str(f / "config.json")])
    view_case("view-port-negative", "view --port -1", None, "error", lambda f: ["--port"], port="-1")
    view_case("view-port-too-large", "view --port 70000", None, "error", lambda f: ["--port", "70000"], port="70000")
    view_case("view-port-in-use", "view --port of a port in use", None, "error", lambda f: ["--port"], port="0", runner=_port_in_use_runner)
    view_case("view-host-bogus", "view --host 999.999.0.1", None, "error", lambda f: ["--host", "999.999.0.1"], extra=("--host", "999.999.0.1"))
    empty_run = h.case_dir("view-empty-folder") / "empty"
    viewer("view-empty-folder", "view an empty folder", ["view", str(empty_run), "--port", str(_free_port())], _serve_runner, "error", [str(empty_run)], setup=lambda: empty_run.mkdir(parents=True), needs=())

    ids = [case.id for case in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


def _mkfile(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _slug(value: str) -> str:
    return {"-1": "negative", "-2": "negative", "-5": "negative", "-0.5": "negative", "0": "zero", "": "empty"}.get(value, value.replace(".", "p").replace("-", "minus"))


def _multipart() -> bytes:
    return (
        b"--XyZ\r\nContent-Disposition: form-data; name=\"files\"; filename=\"evil.txt\"\r\n"
        b"Content-Type: text/plain\r\n\r\nuploaded by bench hostile\r\n--XyZ--\r\n"
    )


# --- running the catalogue ------------------------------------------------------------------


def _run_case(h: Hostile, case: Case) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        folder = h.case_dir(case.id)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        missing = [f"{need}: {h.prepared[need]}" for need in case.needs if h.prepared.get(need)]
        if missing:
            outcome = Outcome(rc=None, verdict="broken", reason=f"could not prepare {'; '.join(missing)}")
        else:
            if case.setup is not None:
                case.setup()
            outcome = (case.runner or _run_argv)(h, case)
    except Exception as error:  # the harness itself failed on this case: say so, go on
        outcome = Outcome(rc=None, verdict="broken", reason=f"harness error: {type(error).__name__}: {error}")
    verdict, reason, first = classify(case, outcome, frozenset(h.normal), str(h.root))
    return {
        "id": case.id,
        "class": case.kind,
        "argv": case.argv,
        "expect": case.expect,
        "note": case.note,
        "about": case.about,
        "verdict": verdict,
        "reason": reason,
        "first_line": first,
        "exception": exception_line(outcome.stderr),
        "rc": outcome.rc,
        "timed_out": outcome.timed_out,
        "served": outcome.served,
        "seconds": round(time.perf_counter() - started, 2),
        "max_rss_mb": outcome.max_rss_mb,
        "notes": outcome.notes,
        "stdout_tail": outcome.stdout[-1500:],
        "stderr_tail": outcome.stderr[-3000:],
    }


def _counts(results: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for kind in (*KINDS, "all"):
        rows = [r for r in results if kind == "all" or r["class"] == kind]
        if rows:
            counts[kind] = {"cases": len(rows), **{v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}}
    return counts


def _table(counts: dict[str, dict[str, int]]) -> str:
    lines = [f"{'class':<12}{'cases':>7}{'clear':>8}{'unclear':>9}{'broken':>8}"]
    for kind, row in counts.items():
        lines.append(f"{kind:<12}{row['cases']:>7}{row['clear']:>8}{row['unclear']:>9}{row['broken']:>8}")
    return "\n".join(lines)


def _selected(cases: list[Case], only: str | None) -> list[Case]:
    if not only:
        return cases
    needles = [needle.strip() for needle in only.split(",") if needle.strip()]
    return [case for case in cases if any(needle in case.id for needle in needles)]


def bench_hostile(args: argparse.Namespace) -> dict[str, Any]:
    """Run the catalogue (or `--only` part of it) and print the counts per class and the unclear
    and broken cases; `--json` writes every case."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN and threading.current_thread() is threading.main_thread():
        # started in the background (`cmd &`): SIGINT is ignored, and the cases would inherit that,
        # so their Ctrl-C would do nothing; a handled signal is reset to the default in a child
        signal.signal(signal.SIGINT, signal.default_int_handler)
    root = Path(tempfile.mkdtemp(prefix="tensorfields-hostile-"))
    h = Hostile(root, args.python, args.pythonpath)
    started = time.perf_counter()
    try:
        cases = _selected(catalogue(h), args.only)
        if not cases:
            raise HostileError(f"--only {args.only!r}: no case id contains it")
        if getattr(args, "list", False):
            for case in cases:
                print(f"{case.kind:<11} {case.id:<40} {' '.join(case.argv)}")
            return {"cases": [{"id": c.id, "class": c.kind, "argv": c.argv, "expect": c.expect, "note": c.note} for c in cases]}
        jobs = getattr(args, "jobs", 2)
        print(f"hostile: {len(cases)} cases against {h.pythonpath} ({h.python}), scratch folder {root}", flush=True)
        h.prepare({need for case in cases for need in case.needs})
        results: dict[str, dict[str, Any]] = {}
        done = [0]

        def finish(result: dict[str, Any]) -> None:
            done[0] += 1
            results[result["id"]] = result
            print(f"[{done[0]:3d}/{len(cases)}] {result['verdict']:<7} {result['id']:<40} {result['seconds']:6.1f} s  {result['first_line'][:90]}", flush=True)

        parallel = [case for case in cases if not case.serial]
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            for future in concurrent.futures.as_completed([pool.submit(_run_case, h, case) for case in parallel]):
                finish(future.result())
        for case in cases:
            if case.serial:
                finish(_run_case(h, case))
        h.stop_viewer()
        ordered = [results[case.id] for case in cases]
        counts = _counts(ordered)
        report = {
            "pythonpath": h.pythonpath,
            "python": h.python,
            "only": args.only,
            "seconds": round(time.perf_counter() - started, 1),
            "counts": counts,
            "cases": ordered,
        }
        print(f"\nhostile: {len(ordered)} cases in {report['seconds']:.0f} s against {h.pythonpath}\n{_table(counts)}")
        bad = [r for r in ordered if r["verdict"] != "clear"]
        if bad:
            print("\nunclear and broken cases:")
            for r in bad:
                print(f"  [{r['verdict']}] {r['id']}: {r['reason']}\n      {r['first_line'][:200]}")
                if r["exception"] and r["exception"] != r["first_line"]:
                    print(f"      ... {r['exception'][:200]}")
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        return report
    finally:
        if h.viewer is not None:
            h.viewer.kill()
        if getattr(args, "keep", False):
            print(f"hostile: kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m apps.bench.hostile`: the same benchmark without loading the CLI."""
    parser = argparse.ArgumentParser(prog="python -m apps.bench.hostile", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        bench_hostile(args)
    except HostileError as error:
        print(f"bench hostile: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
