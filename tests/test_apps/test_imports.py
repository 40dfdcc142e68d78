"""The training, evaluation and benchmark paths run without the viewer, mesh and SfM libraries
(GPU machines have no open3d, gradio or pycolmap): none of them is imported at module level."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT

BLOCKED = ("open3d", "gradio", "pycolmap")


def test_cli_training_and_evaluation_run_without_viewer_mesh_and_sfm_libraries(sphere_scene: Path, tmp_path: Path) -> None:
    code = f"""
import sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # importing it now raises ImportError
import apps.bench.train, apps.bench.march, apps.bench.slim, apps.bench.render, apps.bench.factors, apps.evaluate, apps.training
from apps.cli import build_parser, main
build_parser()
run = {str(tmp_path / "run")!r}
assert main(["train", "--data", {str(sphere_scene)!r}, "--out", run, "--iters", "4", "--grid-init", "12", "--grid-final", "12"]) == 0
assert main(["eval", run, "--split", "val"]) == 0
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
