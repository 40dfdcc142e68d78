"""A run folder belongs to one run (`apps.runs.folder`): another run's folder is refused, a resume
must continue the same run, a lock keeps a second run out, write problems are one line naming
the path (found before the scene loads where possible), and a kill -9 loses at most one interval."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ROOT, small_config
from safetensors import SafetensorError

from apps.cli import build_parser, main
from apps.runs import RunFolderError, RunLock, load_checkpoint
from apps.training import LoopState, TrainConfig, config_from_args, train_run
from apps.training.run import checkpoint_interval

#: small grids and batches, so that each CLI run below takes a second or two
SMALL = ["--grid-init", "16", "--grid-final", "16", "--batch-size", "256"]
SAVED_ITERATIONS = 10


def quiet(_: str) -> None:
    pass


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def saved_run(sphere_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 10-iteration run (checkpoint, config.json, metrics.json, renders/)."""
    out = tmp_path_factory.mktemp("saved") / "run"
    train_run(small_config(sphere_scene, out, iters=SAVED_ITERATIONS, grid_init=16, grid_final=16, batch_size=256), log=quiet)
    return out


@pytest.fixture
def run(saved_run: Path, tmp_path: Path) -> Path:
    """A copy of `saved_run` for one test to change."""
    return Path(shutil.copytree(saved_run, tmp_path / "run"))


def train_argv(scene: Path, out: Path, *extra: str, iters: int = 5) -> list[str]:
    return ["train", "--data", str(scene), "--out", str(out), "--iters", str(iters), *SMALL, *extra]


# --- ownership -------------------------------------------------------------------------------


def test_another_runs_folder_is_refused_without_resume_or_overwrite(
    run: Path, sphere_scene: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = digest(run / "checkpoint.safetensors")
    assert main(train_argv(sphere_scene, run)) == 2
    err = one_line_error(capsys)
    assert str(run) in err and "holds another run" in err and "checkpoint.safetensors" in err
    assert "--resume" in err and "--overwrite" in err
    assert digest(run / "checkpoint.safetensors") == before
    assert load_checkpoint(run).train_state["iteration"] == SAVED_ITERATIONS


def test_overwrite_replaces_only_the_previous_runs_files(run: Path, sphere_scene: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run / "renders" / "stale.png").write_bytes(b"old")
    (run / "notes.txt").write_text("mine")
    assert main(train_argv(sphere_scene, run, "--overwrite", iters=4)) == 0
    removed = "checkpoint.safetensors, config.json, metrics.json, renders/"
    assert f"--overwrite: removed the previous run's {removed} from {run}" in capsys.readouterr().out
    assert load_checkpoint(run).train_state["iteration"] == 4
    assert json.loads((run / "metrics.json").read_text())["iterations"] == 4
    assert not (run / "renders" / "stale.png").exists()
    assert (run / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("key", ["data", "field", "downsample"])
def test_resume_of_a_different_run_is_refused_naming_the_key(
    key: str, run: Path, sphere_scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other_scene = Path(shutil.copytree(sphere_scene, tmp_path / "other_scene"))
    saved = {"data": str(sphere_scene), "field": "vm", "downsample": "1.0"}
    given = {"data": str(other_scene), "field": "cp", "downsample": "2.0"}
    flags = {**saved, key: given[key]}
    before = digest(run / "config.json")
    argv = ["train", "--out", str(run), "--iters", "20", "--resume", *SMALL]
    assert main([*argv, *(item for name, value in flags.items() for item in (f"--{name}", value))]) == 2
    err = one_line_error(capsys)
    assert f"{run}: cannot resume: the saved run has --{key} {saved[key]}, this one --{key} {given[key]}" in err
    assert digest(run / "config.json") == before


def test_resume_of_the_same_scene_by_another_path_is_accepted(run: Path, sphere_scene: Path, tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(sphere_scene)
    config = small_config(tmp_path / "link", run, iters=SAVED_ITERATIONS + 2, grid_init=16, grid_final=16, batch_size=256)
    assert train_run(config, resume=True, log=quiet)["iterations"] == SAVED_ITERATIONS + 2


def test_resume_with_overwrite_is_refused(run: Path, sphere_scene: Path) -> None:
    with pytest.raises(RunFolderError, match="give one of them"):
        train_run(small_config(sphere_scene, run), resume=True, overwrite=True, log=quiet)


# --- the lock --------------------------------------------------------------------------------


def test_a_held_lock_refuses_a_second_run_naming_the_pid(run: Path, sphere_scene: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = digest(run / "checkpoint.safetensors")
    with RunLock(run):
        assert main(train_argv(sphere_scene, run, "--resume", iters=20)) == 2
        err = one_line_error(capsys)
        assert f"in use by another run (pid {os.getpid()} on " in err
        assert json.loads((run / ".lock").read_text())["pid"] == os.getpid()
    assert not (run / ".lock").exists()
    assert digest(run / "checkpoint.safetensors") == before


def test_a_stale_lock_file_does_not_block(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".lock").write_text(json.dumps({"pid": 999999, "host": "gone", "started": "2020-01-01 00:00:00"}))
    with RunLock(folder) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
        with pytest.raises(RunFolderError, match=f"pid {os.getpid()}"):
            RunLock(folder).acquire()
    assert not (folder / ".lock").exists()


def test_a_refused_run_releases_the_lock(run: Path, sphere_scene: Path) -> None:
    with pytest.raises(RunFolderError, match="holds another run"):
        train_run(small_config(sphere_scene, run), log=quiet)
    assert not (run / ".lock").exists()
    with RunLock(run):
        pass


# --- write problems --------------------------------------------------------------------------


def test_an_unwritable_folder_is_refused_before_the_scene_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    # a scene that does not exist: had it been loaded first, the error would name it instead
    assert main(["train", "--data", "/nonexistent/scene", "--out", str(blocker / "run")]) == 2
    err = one_line_error(capsys)
    assert f"{blocker / 'run'}: cannot create the run folder (Not a directory)" in err and "nonexistent" not in err
    assert main(["train", "--data", "/nonexistent/scene", "--out", str(blocker)]) == 2
    assert f"{blocker}: not a folder" in one_line_error(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused_before_the_scene_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "read_only"
    folder.mkdir(mode=0o500)
    try:
        assert main(["train", "--data", "/nonexistent/scene", "--out", str(folder)]) == 2
    finally:
        folder.chmod(0o700)
    assert f"{folder}: cannot write to the run folder (Permission denied)" in one_line_error(capsys)


def _full_disk_save_file(kind: str):
    def save_file(tensors: dict, filename: str, metadata: dict | None = None) -> None:
        if kind == "safetensors":  # what safetensors raises: its own words around the OS's
            raise SafetensorError(f'Error while serializing: I/O error: No space left on device (os error 28) at path "{filename}"')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)

    return save_file


@pytest.mark.parametrize("kind", ["safetensors", "os"])
def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_checkpoint(
    kind: str, run: Path, sphere_scene: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = digest(run / "checkpoint.safetensors")
    monkeypatch.setattr("apps.runs.checkpoint.save_file", _full_disk_save_file(kind))
    assert main(train_argv(sphere_scene, run, "--resume", "--checkpoint-every", "0", iters=15)) == 2
    err = one_line_error(capsys)
    assert err.startswith(f"tensorfields train: error: {run / 'checkpoint.safetensors'}: cannot write (No space left on device)")
    assert "the last checkpoint" in err and "is kept" in err
    assert digest(run / "checkpoint.safetensors") == before
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []  # no temporary file, no lock


def _limit_file_size(limit: int):
    """preexec_fn: writes past `limit` bytes fail (EFBIG), as on a nearly full disk."""
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


@pytest.mark.parametrize("name", ["orbit.mp4", "orbit.gif", "mesh.ply"])
def test_an_export_that_does_not_fit_is_one_line_and_leaves_no_file(saved_run: Path, tmp_path: Path, name: str) -> None:
    """The video writer (ffmpeg, a process of its own) and the mesh writer fail quietly on a full
    disk: the command must say so, naming the file, and leave neither it nor a partial file."""
    out = tmp_path / "exports" / name
    command = ["export-mesh", str(saved_run), "--resolution", "48", "--level", "0.0001"] if name.endswith(".ply") else ["render", str(saved_run), "--orbit", "40"]
    result = subprocess.run(
        [sys.executable, "-m", "apps.cli", *command, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=_limit_file_size(1024),
    )
    err = result.stderr.strip()
    assert result.returncode == 2, (result.stdout, err)
    assert err.splitlines()[-1].startswith(f"tensorfields {command[0]}: error: {out}: cannot write"), err
    assert "Traceback" not in err and "wrote" not in result.stdout
    assert list(out.parent.iterdir()) == []


def test_orphaned_temporary_files_are_removed(run: Path, sphere_scene: Path) -> None:
    orphans = [".checkpoint.safetensors.k2j4_x.tmp", ".config.json.tmp", ".metrics.json.tmp", ".tmpAb3dE9", ".write-test.4242"]
    for name in [*orphans, "notes.tmp", ".tmp-mine"]:
        (run / name).write_bytes(b"partial")
    logged: list[str] = []
    # resuming a finished run only saves and evaluates again
    train_run(small_config(sphere_scene, run, iters=SAVED_ITERATIONS), resume=True, log=logged.append)
    assert [name for name in orphans if (run / name).exists()] == []
    assert (run / "notes.tmp").exists() and (run / ".tmp-mine").exists()
    assert any(line.startswith("removed 5 temporary file(s) left by an interrupted save") for line in logged), logged


def test_the_checkpoint_is_saved_before_the_final_evaluation(sphere_scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import apps.training.final_eval as run_module

    out = tmp_path / "run"
    evaluated = run_module.evaluate_views

    def evaluate_views(model, scene, views, render_dir=None, **kwargs):
        assert load_checkpoint(out).train_state["iteration"] == 3, "no checkpoint of the trained field before the evaluation"
        return evaluated(model, scene, views, render_dir, **kwargs)

    monkeypatch.setattr(run_module, "evaluate_views", evaluate_views)
    config = small_config(sphere_scene, out, iters=3, grid_init=16, grid_final=16, batch_size=256, checkpoint_every=float("inf"))
    train_run(config, log=quiet)


# --- the checkpoint interval -----------------------------------------------------------------


def test_checkpoint_interval_scales_with_the_run() -> None:
    def interval(iteration: int = 0, train_seconds: float = 0.0, **config: object) -> float:
        return checkpoint_interval(TrainConfig(data="scene", **config), SimpleNamespace(state=LoopState(iteration, train_seconds)))

    assert interval(budget=20.0) == 5.0  # a short budget run: every 5 s (at most 1/10 of it, at least 5 s)
    assert interval(budget=300.0) == 30.0
    assert interval(budget=3600.0) == 60.0
    assert interval(iters=30000) == 60.0  # before any iteration, the most
    assert interval(10, 1.0, iters=1000) == 10.0  # 0.1 s per iteration: a 100 s run
    assert interval(10, 1.0, iters=100) == 5.0
    assert interval(10, 1.0, iters=30000) == 60.0
    assert interval(budget=20.0, checkpoint_every=2.0) == 2.0
    args = build_parser().parse_args(["train", "--data", "scene", "--out", "run", "--checkpoint-every", "1.5"])
    assert config_from_args(args).checkpoint_every == 1.5
    assert config_from_args(build_parser().parse_args(["train", "--data", "scene", "--out", "run"])).checkpoint_every is None


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_save_like_ctrl_c(stop: signal.Signals, sphere_scene: Path, tmp_path: Path) -> None:
    """`kill PID` or a closed terminal during training saves the run before it ends (no periodic
    checkpoint is due), says so in one line, and frees the folder."""
    out = tmp_path / "run"
    argv = train_argv(sphere_scene, out, "--checkpoint-every", "100000", iters=1_000_000)
    process = subprocess.Popen([sys.executable, "-m", "apps.cli", *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:  # the last line before the training loop
            if " parameters, grid " in line:
                break
        time.sleep(1.0)
        process.send_signal(stop)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 2, err
    assert err.strip().splitlines()[-1].startswith(f"tensorfields train: error: stopped by {stop.name} at iteration "), err
    assert "Traceback" not in err
    assert load_checkpoint(out).train_state["iteration"] > 0
    assert not (out / ".lock").exists()


def test_kill_9_loses_at_most_one_interval(sphere_scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = train_argv(sphere_scene, out, "--checkpoint-every", "1", iters=1_000_000)
    process = subprocess.Popen([sys.executable, "-m", "apps.cli", *argv], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.safetensors").is_file():
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        time.sleep(0.3)  # kill at some moment after it, perhaps in the middle of the next save
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stderr.close()
    saved = load_checkpoint(out).train_state["iteration"]
    assert saved > 0
    assert (out / ".lock").exists()  # left by the killed run; it must not block the next one
    (out / ".checkpoint.safetensors.a1b2c3.tmp").write_bytes(b"partial")  # as a kill mid-save leaves

    capsys.readouterr()
    assert main(train_argv(sphere_scene, out, "--resume", "--checkpoint-every", "1", iters=saved + 3)) == 0
    assert f"resumed at iteration {saved} " in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    assert load_checkpoint(out).train_state["iteration"] == saved + 3
