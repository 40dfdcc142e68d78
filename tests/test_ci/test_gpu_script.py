"""`.ci/gpu`, the GPU check script, on this machine: without a CUDA device it must still build the
extension, run the small CPU bench march, skip the CUDA parts saying so, and write summary.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import ROOT

SCRIPT = ROOT / ".ci" / "gpu"
NO_CUDA = "no CUDA device: the CUDA parts were skipped"


def _run_check(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the script from an unrelated folder into `tmp_path/check`, with lego pointed at a
    folder that does not exist (no training) and no wheels."""
    environ = {k: v for k, v in os.environ.items() if k not in ("WHEELS", "OUT", "BUDGET", "TIME_LIMIT")}
    environ.update(LEGO=str(tmp_path / "no-lego"), PYTHON=sys.executable, **env)
    result = subprocess.run(
        ["bash", str(SCRIPT), "check"], cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300
    )
    return result, tmp_path / "check"


def test_gpu_check_on_this_machine(tmp_path: Path) -> None:
    result, out = _run_check(tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    stages = {stage["name"]: stage for stage in summary["stages"]}
    assert summary["ok"] and summary["failed"] == []
    assert list(stages) == ["wheels", "install", "environment", "build", "cuda-tests", "nerfacc", "bench-march", "bench-train",
                            "bench-train-gaussians", "gsplat", "bench-splats", "bench-train-hashgrid"]  # fmt: skip
    assert stages["wheels"]["status"] == "skipped" and "WHEELS is not set" in stages["wheels"]["reason"]
    assert stages["build"]["status"] == "ok" and summary["environment"]["cuda_ext_status"]["native"]
    assert summary["environment"]["torch"] == torch.__version__
    assert summary["environment"]["cuda_available"] == torch.cuda.is_available()

    march = stages["bench-march"]
    assert march["status"] == "ok" and march["exit_code"] == 0 and march["log"] == "gpu-check.log"
    log = (out / "gpu-check.log").read_text()
    assert "== bench-march: ok (exit 0)" in log and "native_samples_per_s" in log
    march_json = json.loads((out / "bench_march.json").read_text())
    assert march_json["native_samples_per_s"] > 0 and march_json["reference_samples_per_s"] > 0
    assert march["result"] == march_json

    if not torch.cuda.is_available():
        assert summary["cuda_skipped"] == NO_CUDA and NO_CUDA in result.stdout
        for name in ("cuda-tests", "nerfacc", "bench-train", "bench-train-gaussians", "gsplat", "bench-splats", "bench-train-hashgrid"):
            assert stages[name]["status"] == "skipped" and stages[name]["reason"] == NO_CUDA, stages[name]
        assert march_json["device"].startswith("cpu") and march_json["rays"] == 1024
    else:
        assert stages["cuda-tests"]["status"] == "ok"
        for name in ("bench-train", "bench-train-gaussians"):
            assert stages[name]["status"] == "skipped" and "no lego scene" in stages[name]["reason"]
        assert stages["bench-splats"]["status"] == "skipped" and "no gaussians run" in stages["bench-splats"]["reason"]
    assert "GPU check summary" in result.stdout and "every stage that ran passed" in result.stdout
    # a GPU machine returns at most 8 files from $OUT: the check writes a few
    assert sorted(p.name for p in out.iterdir()) == ["bench_march.json", "gpu-check.log", "summary.json"]


def test_gpu_check_out_of_time_skips_stages(tmp_path: Path) -> None:
    result, out = _run_check(tmp_path, TIME_LIMIT="0")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    stages = json.loads((out / "summary.json").read_text())["stages"]
    assert all(stage["status"] == "skipped" for stage in stages)
    assert [s["name"] for s in stages if "out of time" in s["reason"]] == ["environment", "build", "bench-march"]
