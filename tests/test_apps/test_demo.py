"""`tensorfields demo`: a fixed number of iterations, --budget as a cap said in one line, and a
mesh step that adapts its level or skips rather than failing, so the demo always ends with the
next commands and exit 0. The runs here are a tiny scene and field, never the real demo."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

import apps.commands.demo as demo_module
import data
from apps.cli import main
from apps.export.mesh import NoSurfaceError

#: the demo's run, shrunk to seconds (tiny scene, grids, video and mesh)
TINY_SCENE = dict(size=32, views=(8, 2, 2), supersample=1)
TINY_TRAINING = dict(iters=40, batch_size=256, grid_init=16, grid_final=24, occupancy_resolution=32)


@pytest.fixture
def tiny_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `tensorfields demo` build a 32x32 scene and train, render and mesh it small."""
    build = data.build_demo_scene
    monkeypatch.setattr(data, "build_demo_scene", lambda folder: build(folder, **TINY_SCENE))
    monkeypatch.setattr(demo_module, "DEMO_TRAINING", dataclasses.replace(demo_module.DEMO_TRAINING, **TINY_TRAINING))
    monkeypatch.setattr(demo_module, "ORBIT_FRAMES", 3)
    monkeypatch.setattr(demo_module, "MESH_RESOLUTION", 24)


def _metrics(run: Path) -> dict[str, Any]:
    return json.loads((run / "metrics.json").read_text())


def test_demo_trains_its_iterations(tiny_demo: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "demo"
    assert main(["demo", "--out", str(run), "--iters", "12"]) == 0
    out = capsys.readouterr().out
    assert _metrics(run)["iterations"] == 12
    assert "12 iterations" in out and "stopped training" not in out
    assert (run / "orbit.mp4").is_file() and "\nnext:\n" in out


def test_a_cap_that_cuts_training_short_says_so_and_finishes(tiny_demo: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "demo"
    assert main(["demo", "--out", str(run), "--iters", "100000", "--budget", "0.2"]) == 0
    out = capsys.readouterr().out
    done = _metrics(run)["iterations"]
    assert 0 < done < 100000
    cap_lines = [line for line in out.splitlines() if "stopped training" in line]
    assert cap_lines == [demo_module.cap_message(0.2, done, 100000)], out
    assert "PSNR will be lower" in cap_lines[0]
    assert (run / "metrics.json").is_file() and (run / "orbit.mp4").is_file()
    assert out.rstrip().splitlines()[-1].lstrip().startswith("tensorfields train"), "the next commands should end the demo"


def _faint_exports(monkeypatch: pytest.MonkeyPatch, outcomes: list[float | None]) -> list[float | None]:
    """Make the demo's mesh export fail with `NoSurfaceError(most_opaque)` for each entry of
    `outcomes` in turn (a number or None), then succeed; returns the levels it was called with."""
    import apps.commands.export_mesh as export_mesh_module

    levels: list[float | None] = []

    def export(args: Any) -> None:
        levels.append(args.level)
        if len(levels) <= len(outcomes):
            raise NoSurfaceError("no render step is that opaque", outcomes[len(levels) - 1])

    monkeypatch.setattr(export_mesh_module, "export_mesh_command", export)
    return levels


def test_a_faint_field_gets_its_mesh_below_its_most_opaque_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    levels = _faint_exports(monkeypatch, [0.004])
    assert demo_module.demo_mesh(tmp_path) == tmp_path / demo_module.MESH_NAME
    assert levels == [None, pytest.approx(0.002)]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "--level 0.002" in lines[0] and "0.004" in lines[0]


@pytest.mark.parametrize("outcomes", [[0.0], [None], [0.004, 0.001]], ids=["no density", "empty mesh", "empty at the lower level"])
def test_no_surface_skips_the_mesh_with_one_line(
    outcomes: list[float | None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    levels = _faint_exports(monkeypatch, outcomes)
    assert demo_module.demo_mesh(tmp_path) is None
    assert len(levels) == (2 if outcomes[0] else 1)
    skipped = [line for line in capsys.readouterr().out.splitlines() if line.startswith("demo: no mesh:")]
    assert len(skipped) == 1


def test_the_demo_without_a_mesh_still_ends_with_the_next_commands(
    tiny_demo: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _faint_exports(monkeypatch, [0.0])
    run = tmp_path / "demo"
    assert main(["demo", "--out", str(run), "--iters", "3"]) == 0
    out = capsys.readouterr().out
    assert "demo: no mesh:" in out and "\nnext:\n" in out and "is done" not in out
