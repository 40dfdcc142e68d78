"""The viewer: handlers called directly on a tiny trained run, the CLI's errors, `bench render`,
and the app driven by a headless Chromium (skipped when Chromium or playwright is missing)."""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import apps.runs.checkpoint as checkpoint_module
from apps.runs import CheckpointError, load_checkpoint, save_checkpoint
from apps.cli import main
from apps.viewer.app import PREVIEW_WIDTH, ViewerState, build_viewer, launch_viewer, open_viewer
from apps.viewer.frames import turbo
from fields.gaussians import GaussianField, read_splats

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def view_run(sphere_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("view") / "run"
    common = ["--grid-init", "24", "--grid-final", "32", "--batch-size", "512"]
    assert main(["train", "--data", str(sphere_scene), "--out", str(run), "--iters", "40", *common]) == 0
    return run


@pytest.fixture(scope="session")
def gaussian_view_run(sphere_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("view-gaussians") / "run"
    common = ["--iters", "40", "--batch-size", "512"]
    assert main(["train", "--data", str(sphere_scene), "--out", str(run), "--field", "gaussians", *common]) == 0
    return run


@pytest.fixture(scope="session")
def state(view_run: Path) -> ViewerState:
    return open_viewer(view_run, "cpu")


def _frame(state: ViewerState, azimuth: float = 0.0, width: int = 64, mode: str = "RGB") -> np.ndarray:
    rig = state.rig
    return state.render(azimuth, rig.elevation, 1.0, rig.fov, width, mode)[0]


def test_azimuth_turns_the_camera(state: ViewerState) -> None:
    front, side = _frame(state, 0.0), _frame(state, 90.0)
    assert front.shape == side.shape and front.dtype == np.uint8
    assert np.abs(front.astype(int) - side.astype(int)).mean() > 0.5


def test_elevation_distance_and_fov_change_the_image(state: ViewerState) -> None:
    rig = state.rig
    base = state.render(0.0, rig.elevation, 1.0, rig.fov, 64, "RGB")[0]
    for changed in [(0.0, rig.elevation + 40, 1.0, rig.fov), (0.0, rig.elevation, 1.5, rig.fov), (0.0, rig.elevation, 1.0, rig.fov / 2)]:
        assert not np.array_equal(state.render(*changed, 64, "RGB")[0], base)


def test_resolution_sets_the_frame_size(state: ViewerState) -> None:
    assert _frame(state, width=64).shape == (48, 64, 3)  # the run's 40x30 aspect
    assert _frame(state, width=128).shape == (96, 128, 3)
    rig = state.rig
    assert state.preview(0.0, rig.elevation, 1.0, rig.fov, 256, "RGB")[0].shape[1] == PREVIEW_WIDTH


def test_render_modes_differ(state: ViewerState) -> None:
    rgb, depth, opacity = (_frame(state, mode=mode) for mode in ("RGB", "depth", "opacity"))
    assert not np.array_equal(depth, rgb) and not np.array_equal(opacity, rgb) and not np.array_equal(depth, opacity)
    assert np.all(opacity[..., 0] == opacity[..., 1])  # grey
    with pytest.raises(ValueError, match="unknown render mode"):
        _frame(state, mode="normals")


def test_turbo_runs_from_blue_through_green_to_red() -> None:
    colours = turbo(np.array([0.15, 0.5, 0.85]))
    assert colours.shape == (3, 3) and list(colours.argmax(axis=1)) == [2, 1, 0]


def test_info_panel(state: ViewerState) -> None:
    _frame(state)
    info = state.info()
    assert "vm" in info and "parameters" in info and "MB" in info and "PSNR" in info and "last frame" in info
    assert state.max_rank == 16  # VM is rank-ordered: the viewer shows a rank slider up to 16


def test_rank_slider_renders_the_slimmed_field(state: ViewerState) -> None:
    rig = state.rig
    full = state.render(0.0, rig.elevation, 1.0, rig.fov, 48, "RGB", 16)[0]
    low = state.render(0.0, rig.elevation, 1.0, rig.fov, 48, "RGB", 1)[0]
    again = state.render(0.0, rig.elevation, 1.0, rig.fov, 48, "RGB", 16)[0]
    assert np.array_equal(full, again) and np.abs(full.astype(int) - low.astype(int)).max() > 10


def test_training_view_against_ground_truth(state: ViewerState) -> None:
    truth, render, message = state.training_view(3)
    assert truth.shape == render.shape == (30, 40, 3)
    assert "PSNR" in message and "dB" in message
    assert state.training_view(999)[2].startswith("no training view 999")


def test_mesh_export_writes_a_glb(state: ViewerState) -> None:
    model, download, message = state.export_mesh("mc", 48)
    assert model == download and model.endswith(".glb") and Path(model).stat().st_size > 0, message
    assert "triangles" in message


def test_export_folder_is_made_on_first_export_and_removed(view_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    viewer = open_viewer(view_run, "cpu")
    assert list(tmp_path.iterdir()) == [], "opening a run makes no temporary folder"
    model, _, message = viewer.export_mesh("mc", 32)
    assert model is not None and Path(model).parent.parent == tmp_path, message
    viewer.close()
    assert list(tmp_path.iterdir()) == []


def test_splat_export_writes_the_gaussians_as_a_ply(gaussian_view_run: Path) -> None:
    viewer = open_viewer(gaussian_view_run, "cpu")
    try:
        model, download, message = viewer.export_splats()
        assert model == download and model is not None and model.endswith(".ply"), message
        field = viewer.model.field
        assert isinstance(field, GaussianField) and len(read_splats(model)) == field.num_gaussians
        assert message.startswith(f"wrote {Path(model).name}: {field.num_gaussians:,} Gaussians, SH degree {field.sh_degree},")
        assert message.endswith(" MB")
    finally:
        viewer.close()


def test_splat_export_of_another_field_is_the_reason(state: ViewerState) -> None:
    model, download, message = state.export_splats()
    assert model is None and download is None
    assert message.startswith("splat export failed:") and "holds a 'vm' field" in message and "\n" not in message


def test_viewer_has_an_export_splats_button_wired_to_the_export(view_run: Path) -> None:
    import gradio as gr

    demo = build_viewer(view_run, "cpu")
    try:
        buttons = [block for block in demo.blocks.values() if isinstance(block, gr.Button) and block.value == "export splats"]
        assert len(buttons) == 1
        wired = [fn for fn in demo.fns.values() if any(target[0] == buttons[0]._id for target in fn.targets)]
        assert [fn.fn.__name__ for fn in wired] == ["export_splats"]
        assert [type(block) for block in wired[0].outputs] == [gr.Model3D, gr.File, gr.Markdown]
    finally:
        demo.close()


@pytest.mark.parametrize("text", ["{oops", "[1, 2]", ""])
def test_damaged_metrics_are_a_warning_naming_the_file(
    text: str, view_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    shutil.copytree(view_run, run)
    (run / "metrics.json").write_text(text)
    with caplog.at_level("WARNING"):
        viewer = open_viewer(run, "cpu")
    assert viewer.metrics == {} and "PSNR" not in viewer.info()
    assert [record.getMessage().split(":")[0] for record in caplog.records] == [str(run / "metrics.json")]


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint.safetensors"):
        open_viewer(tmp_path)
    assert main(["view", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tensorfields view: error:") and "\n" not in err


def test_newer_checkpoint_format_is_a_clear_error(view_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    shutil.copytree(view_run, run)
    monkeypatch.setattr(checkpoint_module, "FORMAT_VERSION", checkpoint_module.FORMAT_VERSION + 1)
    save_checkpoint(run / "checkpoint.safetensors", load_checkpoint(run))
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="newer than this tensorfields reads"):
        build_viewer(run)


@pytest.mark.parametrize("command", [["view"], ["bench", "render"]])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0 and "usage: tensorfields" in capsys.readouterr().out


def test_bench_render(view_run: Path, tmp_path: Path) -> None:
    report = tmp_path / "render.json"
    assert main(["bench", "render", "--run", str(view_run), "--size", "32", "--frames", "2", "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["size"] == 32 and len(result["seconds"]) == 2 and result["median_seconds"] > 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _image_src(page: Any, timeout: float = 60.0, differs_from: str | None = None) -> str:
    """The render's image src once it is set (and differs from `differs_from`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        images = page.locator("#render img")
        src = images.first.get_attribute("src") if images.count() else None
        if src and src != differs_from:
            return src
        page.wait_for_timeout(200)
    raise AssertionError(f"the render image did not {'change' if differs_from else 'appear'} within {timeout:.0f} s")


def test_browser_drag_azimuth_rerenders(view_run: Path, tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    demo = build_viewer(view_run, "cpu")
    port = _free_port()
    launch_viewer(demo, port=port, prevent_thread_lock=True, quiet=True)  # the guard must let the page work
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            before_src = _image_src(page)
            before = page.locator("#render img").first.screenshot(path=str(tmp_path / "before.png"))
            box = page.locator("#azimuth input[type=range]").bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2, steps=5)
            page.mouse.up()
            after_src = _image_src(page, differs_from=before_src)
            page.wait_for_timeout(500)
            after = page.locator("#render img").first.screenshot(path=str(tmp_path / "viewer.png"))
            browser.close()
    finally:
        demo.close()
    assert after_src != before_src and after != before
