"""The `tensorfields` command line: help, the train -> eval -> render flow, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest

from apps.cli import main

SUBCOMMANDS = [["train"], ["eval"], ["render"], ["demo"], ["bench"], ["bench", "train"], ["bench", "march"], ["bench", "factors"]]


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: tensorfields" in capsys.readouterr().out


def test_console_script_is_installed() -> None:
    result = subprocess.run([sys.executable, "-m", "apps.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "train" in result.stdout and "bench" in result.stdout


def test_train_eval_render_flow(sphere_scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    common = ["--grid-init", "24", "--grid-final", "32", "--batch-size", "512"]
    assert main(["train", "--data", str(sphere_scene), "--out", str(run), "--iters", "30", *common]) == 0
    assert (run / "checkpoint.safetensors").is_file() and (run / "metrics.json").is_file()

    report = tmp_path / "eval.json"
    assert main(["eval", str(run), "--split", "val", "--json", str(report)]) == 0
    assert "PSNR" in capsys.readouterr().out
    result = json.loads(report.read_text())
    assert {"psnr", "ssim", "num_views", "resolution"} <= result.keys()
    assert result["num_views"] == 2 and result["resolution"] == [40, 30]
    assert 0.0 < result["ssim"] <= 1.0 and result["psnr"] > 10.0

    video = tmp_path / "orbit.mp4"
    assert main(["render", str(run), "--orbit", "6", "--out", str(video)]) == 0
    frames = iio.imread(video, index=None)
    assert frames.shape == (6, 30, 40, 3)
    assert frames[:, 10:20, 15:25].mean() < frames[:, :3, :3].mean(), "the sphere should be darker than the white background"


def test_eval_at_other_downsample(sphere_scene: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    main(["train", "--data", str(sphere_scene), "--out", str(run), "--iters", "5", "--grid-init", "16", "--grid-final", "16"])
    report = tmp_path / "eval.json"
    assert main(["eval", str(run), "--downsample", "2", "--json", str(report)]) == 0
    assert json.loads(report.read_text())["resolution"] == [20, 15]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--data", "/nonexistent/scene", "--out", "OUT"], "/nonexistent/scene"),
        (["eval", "EMPTY"], "not a run folder"),
        (["render", "EMPTY", "--out", "x.mp4"], "not a run folder"),
    ],
)
def test_bad_input_gives_one_line_error(
    argv: list[str], needle: str, sphere_scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    substitutions = {"OUT": str(tmp_path / "out"), "EMPTY": str(tmp_path / "empty"), "SCENE": str(sphere_scene)}
    assert main([substitutions.get(arg, arg) for arg in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err


def _failing_eval(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """Make `tensorfields eval` raise `error` (main builds the parser after this, so it takes it)."""
    import apps.commands.eval as eval_module

    def fail(args: object) -> None:
        raise error

    monkeypatch.setattr(eval_module, "eval_command", fail)


@pytest.mark.parametrize(
    "error, line",
    [
        (PermissionError(13, "Permission denied", "/runs/a/metrics.json"), "/runs/a/metrics.json: Permission denied"),
        (FileExistsError(17, "File exists", "a.partial", None, "a"), "a.partial -> a: File exists"),
        (OSError(28, "No space left on device"), "[Errno 28] No space left on device"),
        (OSError("Cannot find empty port in range: 7860-7959"), "Cannot find empty port in range: 7860-7959"),
        (ValueError("first line\n  second line"), "first line second line"),
    ],
    ids=["filename", "two-filenames", "no-filename", "plain", "multi-line"],
)
def test_user_errors_are_one_line_naming_the_file(
    error: BaseException, line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _failing_eval(monkeypatch, error)
    assert main(["eval", "RUN"]) == 2
    assert capsys.readouterr().err == f"tensorfields eval: error: {line}\n"


def test_ctrl_c_outside_training_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _failing_eval(monkeypatch, KeyboardInterrupt())
    assert main(["eval", "RUN"]) == 130
    assert capsys.readouterr().err.strip() == "tensorfields eval: interrupted"


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    _failing_eval(monkeypatch, KeyError("scene"))  # not a user error: main must not swallow it
    with pytest.raises(KeyError):
        main(["eval", "RUN"])


def test_bench_errors_name_the_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "render", "--run", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"tensorfields bench render: error: {tmp_path}")


def test_bench_march_compares_native_and_reference(tmp_path: Path) -> None:
    out = tmp_path / "march.json"
    assert main(["bench", "march", "--rays", "512", "--resolution", "32", "--repeats", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["samples_per_pass"] > 512  # rays cross the occupied ball: several samples each
    assert result["native_samples_per_s"] > 0 and result["reference_samples_per_s"] > 0
    assert result["speedup"] == pytest.approx(result["native_samples_per_s"] / result["reference_samples_per_s"], rel=0.01)
    assert result["device"].startswith("cpu")


def test_bench_train_against_the_reference_path(sphere_scene: Path, tmp_path: Path) -> None:
    out = tmp_path / "train.json"
    argv = ["bench", "train", "--data", str(sphere_scene), "--budget", "3", "--eval-every", "1.5", "--eval-views", "2"]
    assert main([*argv, "--out", str(tmp_path / "run"), "--compare-reference", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["native"] and result["iterations"] > 0 and result["reference"]["iterations"] > 0
    assert result["speedup_vs_reference"] == pytest.approx(result["iterations_per_s"] / result["reference"]["iterations_per_s"], rel=0.01)
    assert len(result["curve"]) >= 2 and len(result["reference"]["curve"]) >= 2
    assert (tmp_path / "run-reference" / "checkpoint.safetensors").is_file()
