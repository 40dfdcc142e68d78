"""Following a run while it trains (`apps.viewer.follow`, `runs.progress`): the progress log
written and read, a newer checkpoint picked up, the waiting, deleted and damaged cases as status
lines, the CLI's `--view` / `--follow`, and the page showing a newer iteration in a headless
Chromium (skipped when Chromium or playwright is missing)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT

from apps.cli import main
from apps.runs import CHECKPOINT_NAME, PROGRESS_NAME, ProgressLog, ProgressReader, load_checkpoint, save_checkpoint
from apps.viewer.app import build_viewer, launch_viewer, open_viewer
from apps.viewer.follow import RunFollower, follow_tick, wait_for_checkpoint

CHROMIUM = Path("/usr/bin/chromium")
TRAINED = 40
SMALL = ["--grid-init", "24", "--grid-final", "32", "--batch-size", "512"]


@pytest.fixture(scope="module")
def trained(sphere_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 40-iteration run (with its progress.jsonl)."""
    run = tmp_path_factory.mktemp("follow") / "run"
    assert main(["train", "--data", str(sphere_scene), "--out", str(run), "--iters", str(TRAINED), *SMALL]) == 0
    return run


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    """A copy of `trained` for one test to change."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def follower_of(run: Path) -> RunFollower:
    return RunFollower(run, "cpu", open_viewer(run, "cpu").scene)


def advance(run: Path, iteration: int) -> None:
    """The run "trains on": its checkpoint saved again as of `iteration`, and a progress line for it."""
    checkpoint = load_checkpoint(run)
    checkpoint.train_state["iteration"] = iteration
    save_checkpoint(run / CHECKPOINT_NAME, checkpoint)
    with open(run / PROGRESS_NAME, "a") as log:
        log.write(f'{{"iteration": {iteration}, "seconds": 99.0, "loss": 0.001, "psnr": 30.0}}\n')


# --- the progress log ------------------------------------------------------------------------


def test_training_writes_the_progress_log_and_the_plot_has_its_iterations(trained: Path) -> None:
    reader = ProgressReader(trained / PROGRESS_NAME)
    assert reader.update() and reader.damaged == 0
    iterations = [entry.iteration for entry in reader.entries]
    assert iterations[0] == 1 and iterations[-1] == TRAINED and iterations == sorted(set(iterations))
    seconds = [entry.seconds for entry in reader.entries]
    assert seconds == sorted(seconds) and all(entry.loss > 0 and entry.psnr > 0 for entry in reader.entries)
    follower = follower_of(trained)
    follower.poll()
    assert list(follower.loss_frame()["iteration"]) == iterations
    psnr = follower.psnr_frame()
    assert set(psnr["series"]) == {"training batch", "held-out"}
    assert list(psnr[psnr["series"] == "held-out"]["iteration"]) == [TRAINED]


def test_progress_log_writes_about_once_a_second_and_keeps_lines_up_to_the_resumed_iteration(tmp_path: Path) -> None:
    path = tmp_path / PROGRESS_NAME
    with ProgressLog(path, 0) as log:
        for iteration in range(1, 101):
            log.record(iteration, iteration * 0.01, 0.1, 20.0)
    assert [line.split(",")[0] for line in path.read_text().splitlines()] == ['{"iteration": 1', '{"iteration": 100']
    with ProgressLog(path, 50) as log:  # a resume from the checkpoint of iteration 50
        log.record(51, 1.0, 0.1, 20.0)
    reader = ProgressReader(path)
    reader.update()
    assert [entry.iteration for entry in reader.entries] == [1, 51]
    ProgressLog(path, 0).close()  # a new run (or --overwrite) starts an empty log
    assert path.read_text() == ""


def test_resume_cuts_the_log_back_to_its_checkpoint_and_overwrite_starts_it_again(run: Path, sphere_scene: Path) -> None:
    with open(run / PROGRESS_NAME, "a") as log:  # trained past the checkpoint, then killed
        log.write('{"iteration": 90, "seconds": 99.0, "loss": 0.001, "psnr": 30.0}\n')
    argv = ["train", "--data", str(sphere_scene), "--out", str(run), *SMALL, "--checkpoint-every", "1000"]
    assert main([*argv, "--iters", str(TRAINED + 5), "--resume"]) == 0
    reader = ProgressReader(run / PROGRESS_NAME)
    reader.update()
    iterations = [entry.iteration for entry in reader.entries]
    assert 90 not in iterations and iterations[-1] == TRAINED + 5 and iterations == sorted(set(iterations))
    assert main([*argv, "--iters", "3", "--overwrite"]) == 0
    reader.update()
    assert [entry.iteration for entry in reader.entries][-1] == 3 and max(entry.iteration for entry in reader.entries) == 3


def test_damaged_progress_lines_are_skipped_and_counted(run: Path) -> None:
    with open(run / PROGRESS_NAME, "a") as log:
        log.write('{oops\n[1, 2]\n{"iteration": -3, "seconds": 1, "loss": 1, "psnr": 1}\n{"iteration": 41, "seconds": 9')
    follower = follower_of(run)
    follower.poll()
    assert follower.progress.damaged == 3 and follower.progress.entries[-1].iteration == TRAINED
    assert "skipped 3 damaged line(s) of progress.jsonl" in follower.status
    with open(run / PROGRESS_NAME, "a") as log:  # the line being written is finished
        log.write('9.5, "loss": 0.01, "psnr": 25}\n')
    assert follower.poll().curves and follower.progress.entries[-1].iteration == 41


# --- checkpoints -----------------------------------------------------------------------------


def test_follower_picks_up_a_newer_checkpoint(run: Path) -> None:
    follower = follower_of(run)
    first = follower.poll()
    assert first.model is not None and follower.iteration == TRAINED
    assert "following" in follower.status and "held-out PSNR" in follower.status
    assert follower.poll() == type(first)(None, False), "nothing new: nothing reloaded"
    advance(run, 1040)
    newer = follower.poll()
    assert newer.model is not None and newer.model is not first.model and newer.curves
    assert follower.iteration == 1040 and [point[0] for point in follower.held_out] == [TRAINED, 1040]
    assert "**iteration** 1040 (shown)" in follower.iteration_text() and "iteration 1040, 99 s" in follower.iteration_text()


def test_a_run_without_checkpoint_is_waited_for(run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "starting"
    empty.mkdir()
    follower = RunFollower(empty, "cpu", open_viewer(run, "cpu").scene)
    assert follower.poll().model is None and follower.model is None
    assert follower.status == f"waiting for the first checkpoint in {empty}" and "none yet" in follower.iteration_text()
    assert follower.loss_frame().empty and follower.psnr_frame().empty
    for name in (CHECKPOINT_NAME, "config.json"):
        shutil.copy(run / name, empty / name)
    assert follower.poll().model is not None and follower.iteration == TRAINED
    wait_for_checkpoint(empty, log=pytest.fail)  # there: no waiting, no message


def test_a_deleted_checkpoint_keeps_the_last_model(run: Path) -> None:
    follower = follower_of(run)
    model = follower.poll().model
    (run / CHECKPOINT_NAME).unlink()
    assert follower.poll().model is None and follower.model is model
    assert follower.status.startswith(f"the checkpoint in {run} was deleted; still showing the last model loaded (iteration {TRAINED})")


def test_an_unloadable_checkpoint_keeps_the_current_model(run: Path, trained: Path) -> None:
    follower = follower_of(run)
    model = follower.poll().model
    (run / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    assert follower.poll().model is None and follower.model is model
    assert "could not load the new checkpoint (" in follower.status and f"still showing iteration {TRAINED}" in follower.status
    assert "\n" not in follower.status
    shutil.copy(trained / CHECKPOINT_NAME, run / CHECKPOINT_NAME)  # the next save is good again
    assert follower.poll().model is not None and follower.status.startswith("following")


def test_a_tick_with_a_new_checkpoint_rerenders_the_camera(run: Path) -> None:
    state = open_viewer(run, "cpu")
    follower = RunFollower(run, "cpu", state.scene)
    follower.poll()
    camera = (0.0, state.rig.elevation, 1.0, state.rig.fov, 64, "RGB")
    image, info, iteration, loss, psnr, status = follow_tick(state, follower, *camera)
    assert not isinstance(image, np.ndarray), "no new checkpoint: the frame is left as it is"
    advance(run, 77)
    image, info, iteration, loss, psnr, status = follow_tick(state, follower, *camera)
    assert state.model is follower.model and isinstance(image, np.ndarray) and image.shape[1] == 64
    assert "**iteration** 77 (shown)" in iteration and list(loss["iteration"])[-1] == 77 and status.startswith("following")


def test_follow_viewer_has_the_panel(run: Path) -> None:
    import gradio as gr

    demo = build_viewer(run, "cpu", follow=True)
    try:
        blocks = list(demo.blocks.values())
        assert sum(isinstance(block, gr.LinePlot) for block in blocks) == 2 and any(isinstance(block, gr.Timer) for block in blocks)
        assert not any(isinstance(block, gr.Timer) for block in build_viewer(run, "cpu").blocks.values())
    finally:
        demo.close()


# --- the command line ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(("command", "flags"), [("train", ["--view", "--host", "--port"]), ("view", ["--follow", "--host", "--port"])])
def test_help_names_the_flags(command: str, flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and all(flag in out for flag in flags)


def test_train_view_on_a_port_in_use_is_one_line_and_trains_nothing(
    sphere_scene: Path, tmp_path: Path, busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["train", "--data", str(sphere_scene), "--out", str(out), "--iters", "5", *SMALL, "--view", "--port", str(busy_port)]) == 2
    assert one_line_error(capsys) == f"tensorfields train: error: --port {busy_port}: in use by another program; choose another, or leave --port out"
    assert not out.exists()


def test_train_port_without_view_is_refused(sphere_scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(sphere_scene), "--out", str(tmp_path / "run"), "--port", str(free_port())]) == 2
    assert "add --view" in one_line_error(capsys)


def test_view_follow_on_a_port_in_use_is_one_line(run: Path, busy_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", str(run), "--follow", "--port", str(busy_port)]) == 2
    assert f"--port {busy_port}: in use" in one_line_error(capsys)


def test_train_view_serves_the_run_then_keeps_serving_until_ctrl_c(sphere_scene: Path, tmp_path: Path) -> None:
    port = free_port()
    argv = ["-m", "apps.cli", "train", "--data", str(sphere_scene), "--out", str(tmp_path / "run"), "--iters", "10", *SMALL]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, *argv, "--view", "--port", str(port), "--checkpoint-every", "0.5"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if "until Ctrl-C" in line:
                break
        served = [line for line in lines if line.startswith("viewer: ")]
        assert served == [f"viewer: http://127.0.0.1:{port}/ (the newest checkpoint, re-rendered while the page is open)\n"], "".join(lines)
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass  # still serving after training
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- the page --------------------------------------------------------------------------------


def _text(page: Any, selector: str, contains: str, timeout: float = 20.0) -> str:
    """The text of `selector` once it contains `contains`."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = page.locator(selector).inner_text() if page.locator(selector).count() else ""
        if contains in text:
            return text
        page.wait_for_timeout(200)
    raise AssertionError(f"{selector} did not show {contains!r} within {timeout:.0f} s (it shows {text!r})")


def test_browser_follow_shows_a_newer_iteration(run: Path) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    demo = build_viewer(run, "cpu", follow=True)
    port = free_port()
    launch_viewer(demo, port=port, prevent_thread_lock=True, quiet=True)
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            _text(page, "#follow-iteration", f"iteration {TRAINED} (shown)")
            assert page.locator("#follow-loss").count() == 1
            advance(run, 1234)
            _text(page, "#follow-iteration", "iteration 1234 (shown)")
            _text(page, "#follow-status", "iteration 1234 loaded")
            browser.close()
    finally:
        demo.close()
