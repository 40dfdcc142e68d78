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
import torch

import apps.runs.checkpoint as checkpoint_module
from apps.runs import CheckpointError, load_checkpoint, save_checkpoint
from apps.cli import main
from apps.viewer.camera import ViewPose
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
def slim_view_run(sphere_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("view-slim") / "run"
    common = ["--grid-init", "24", "--grid-final", "32", "--batch-size", "512", "--slimmable"]
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


def test_progressive_render_is_coarse_first_then_full_at_the_same_size(state: ViewerState) -> None:
    rig = state.rig
    frames = list(state.refine(0.0, rig.elevation, 1.0, rig.fov, 256, "RGB"))
    assert len(frames) == 2 and frames[0][0].shape == frames[1][0].shape == (192, 256, 3)
    coarse, full = frames[0][0], frames[1][0]
    factor = 256 // PREVIEW_WIDTH  # the coarse frame is scaled up by nearest neighbour: blocks of one colour
    blocks = coarse.reshape(192 // factor, factor, PREVIEW_WIDTH, factor, 3)
    assert np.all(blocks == blocks[:, :1, :, :1])
    assert not np.all(full.reshape(blocks.shape) == full.reshape(blocks.shape)[:, :1, :, :1])
    assert np.array_equal(full, state.render(0.0, rig.elevation, 1.0, rig.fov, 256, "RGB")[0])
    assert np.array_equal(state.preview(0.0, rig.elevation, 1.0, rig.fov, 256, "RGB")[0], coarse)
    assert "at 256 px" in frames[1][1] and "at 32 px" in frames[0][1]


def _gesture(state: ViewerState, **message: Any) -> list[tuple[Any, ...]]:
    rig = state.rig
    text = json.dumps({"kind": "orbit", "width": 128, "height": 96, **message})
    return list(state.gesture(text, 10.0, rig.elevation, 1.0, rig.fov, 64, "RGB", None, None, False, None))


def test_a_gestures_movement_counts_from_where_it_began(state: ViewerState) -> None:
    first = _gesture(state, id=101, dx=10.0)
    second = _gesture(state, id=101, dx=30.0)  # the page sends totals; the controls given are stale
    assert len(first) == len(second) == 1  # moves get the coarse frame only
    alone = _gesture(state, id=102, dx=30.0)
    assert second[0][:4] == alone[0][:4] and second[0][0] == pytest.approx(10.0 - 180.0 * 30.0 / 128, abs=0.01)
    coarse = second[0][4]
    final = _gesture(state, id=102, dx=30.0, final=True)
    assert len(final) == 1 and final[0][:4] == alone[0][:4] and final[0][4].shape == coarse.shape
    assert not np.array_equal(final[0][4], coarse)  # the full frame, not the coarse one again
    recentred = _gesture(state, kind="recentre", id=103, final=True)
    assert len(recentred) == 2 and recentred[-1][3] == [0.0, 0.0, 0.0]


def test_go_to_view_moves_the_camera_to_the_training_camera(state: ViewerState) -> None:
    *pose, image, info = list(state.go_to_view(4, 64, "RGB"))[-1]
    azimuth, elevation, distance, fov, target = pose
    camera = ViewPose(azimuth, elevation, distance, fov, tuple(target)).camera(state.rig, 64)
    torch.testing.assert_close(camera.c2w[0, :3, 3], state.cameras.c2w[4, :3, 3], atol=0.02, rtol=0)
    assert image.shape == (48, 64, 3) and "last frame" in info


def test_training_cameras_are_drawn_on_request(state: ViewerState) -> None:
    from apps.viewer.overlay import COLOUR, SELECTED_COLOUR

    rig = state.rig
    plain = state.render(0.0, rig.elevation + 30, 2.5, rig.fov, 128, "RGB", None, None, False)[0]
    drawn = state.render(0.0, rig.elevation + 30, 2.5, rig.fov, 128, "RGB", None, None, True, 2)[0]
    colours = {tuple(c) for c in drawn.reshape(-1, 3)}
    assert COLOUR in colours and SELECTED_COLOUR in colours and COLOUR not in {tuple(c) for c in plain.reshape(-1, 3)}


def test_render_modes_differ(state: ViewerState) -> None:
    rgb, depth, opacity = (_frame(state, mode=mode) for mode in ("RGB", "depth", "opacity"))
    assert not np.array_equal(depth, rgb) and not np.array_equal(opacity, rgb) and not np.array_equal(depth, opacity)
    assert np.all(opacity[..., 0] == opacity[..., 1])  # grey
    with pytest.raises(ValueError, match="unknown render mode"):
        _frame(state, mode="normals")


def test_turbo_runs_from_blue_through_green_to_red() -> None:
    colours = turbo(np.array([0.15, 0.5, 0.85]))
    assert colours.shape == (3, 3) and list(colours.argmax(axis=1)) == [2, 1, 0]


def test_info_panel_rounds_the_metrics(state: ViewerState) -> None:
    _frame(state)
    info = state.info()
    assert "vm" in info and "parameters" in info and "MB" in info and "PSNR" in info and "last frame" in info
    psnr = state.metrics["psnr"]
    assert f"**held-out PSNR** {psnr:.2f} dB" in info and str(psnr) not in info
    assert f"**held-out SSIM** {state.metrics['ssim']:.3f}  " in info
    assert state.title == f"{state.run_dir.name} (vm)"


def test_rank_slider_only_for_a_field_trained_slimmable(state: ViewerState, slim_view_run: Path) -> None:
    assert state.max_rank is None  # a VM trained without TRaIn: its low ranks are noise
    slim = open_viewer(slim_view_run, "cpu")
    assert slim.max_rank == slim.model.field.ranks > 1  # trained with TRaIn (truncated to the rank it reached)


def test_a_rank_renders_the_slimmed_field(state: ViewerState) -> None:
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


def test_viewer_shows_a_rank_slider_only_for_a_slimmable_run(view_run: Path, slim_view_run: Path) -> None:
    import gradio as gr

    for run, expected in ((view_run, []), (slim_view_run, ["rank"])):
        demo = build_viewer(run, "cpu")
        try:
            sliders = [block.elem_id for block in demo.blocks.values() if isinstance(block, gr.Slider)]
            assert [name for name in sliders if name == "rank"] == expected
            assert demo.title == "tensorfields: run (vm)"
        finally:
            demo.close()


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
    assert main(["bench", "render", "--run", str(view_run), "--size", "64", "--frames", "2", "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["size"] == 64 and result["coarse_width"] == PREVIEW_WIDTH and len(result["full_frame_seconds_each"]) == 2
    assert 0 < result["first_frame_seconds"] < result["full_frame_seconds"]
    assert set(result["previous_viewer"]) == {"frame_128_seconds", "frame_64_seconds"}


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


def _slider_value(page: Any, elem_id: str) -> float:
    return float(page.locator(f"#{elem_id} input[type=number]").first.input_value())


def _wait_for(page: Any, condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        page.wait_for_timeout(200)
    raise AssertionError(f"{what} within {timeout:.0f} s")


def test_browser_drag_on_the_picture_orbits_zooms_and_exports(view_run: Path, tmp_path: Path) -> None:
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
            _image_src(page)
            _wait_for(page, lambda: "256 px" in page.locator("#info").inner_text(), "the full frame did not come")
            picture = page.locator("#render img").first
            box = picture.bounding_box()
            assert box["width"] > 600, f"the picture should fill its panel, it is {box['width']:.0f} px wide"
            before = picture.screenshot()
            before_src = picture.get_attribute("src")
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x + box["width"] / 4, y, steps=8)
            page.mouse.up()
            expected = -180.0 / 4  # a quarter of the picture's width: 45 degrees
            _wait_for(page, lambda: abs(_slider_value(page, "azimuth") - expected) < 1.0, "the azimuth slider did not follow the drag")
            _image_src(page, differs_from=before_src)
            _wait_for(page, lambda: "256 px" in page.locator("#info").inner_text(), "the full frame did not come after the drag")
            page.wait_for_timeout(500)
            assert picture.screenshot(path=str(tmp_path / "viewer.png")) != before
            page.mouse.move(x, y)
            page.mouse.wheel(0, 200)
            _wait_for(page, lambda: _slider_value(page, "distance") > 1.2, "the wheel did not zoom out")
            page.get_by_text("export mesh", exact=True).first.click()  # open the accordion
            page.locator("#export-mesh").click()
            _wait_for(page, lambda: ".glb" in page.locator("#mesh-message").inner_text(), "the mesh export did not finish")
            assert page.locator("#mesh-download a").count() >= 1
            browser.close()
    finally:
        demo.close()
