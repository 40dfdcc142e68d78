"""Every numeric flag of every subcommand has a range that argparse checks (`apps.commands.types`):
a bad value is exit 2 with one line naming the flag, before any work (no file is written)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from apps.cli import build_parser, main
from apps.commands import types

SCENE, RUN = "scene", "run"  # neither exists: argparse must refuse before anything reads them

#: (argv, flag named in the message)
BAD_FLAGS = [
    *[(["train", "--data", SCENE, "--out", "out", "--budget", v], "--budget") for v in ["-1", "0", "nan", "inf", "1e7", "abc"]],
    *[(["train", "--data", SCENE, "--out", "out", "--iters", v], "--iters") for v in ["0", "-1", "1.5", "1000000000000"]],
    *[(["train", "--data", SCENE, "--out", "out", "--downsample", v], "--downsample") for v in ["0", "0.5", "-2", "nan", "1e6"]],
    *[(["train", "--data", SCENE, "--out", "out", "--grid-init", v], "--grid-init") for v in ["-1", "1", "7", "100000"]],
    (["train", "--data", SCENE, "--out", "out", "--grid-final", "5000"], "--grid-final"),
    *[(["train", "--data", SCENE, "--out", "out", "--batch-size", v], "--batch-size") for v in ["-1", "10000000000"]],
    *[(["train", "--data", SCENE, "--out", "out", "--cone-angle", v], "--cone-angle") for v in ["-1", "nan", "2"]],
    *[(["train", "--data", SCENE, "--out", "out", "--seed", v], "--seed") for v in ["-1", "100000000000000000000000"]],
    *[(["train", "--data", SCENE, "--out", "out", "--slimmable", "--upsilon", v], "--upsilon") for v in ["0", "-1", "inf"]],
    (["train", "--data", SCENE, "--out", "out", "--slimmable", "--eta", "-1"], "--eta"),
    *[(["train", "--data", "clip.mp4", "--out", "out", "--fps", v], "--fps") for v in ["0", "-1", "nan", "1000"]],
    (["train", "--data", SCENE, "--out", "out", "--field", "nope"], "--field"),
    (["train", "--data", SCENE, "--out", "out", "--device", "gpu"], "--device"),
    (["train", "--data", SCENE, "--out", "out", "--decoder", "nope"], "--decoder"),
    (["train", "--data", SCENE, "--out", "out", "--resume", "--overwrite"], "--overwrite"),
    *[(["train", "--data", SCENE, "--out", "out", "--checkpoint-every", v], "--checkpoint-every") for v in ["-1", "nan", "inf", "1e7"]],
    (["train", "--data", SCENE, "--out", ""], "--out"),
    (["slim", RUN, "--rank", "1", "--out", " "], "--out"),
    (["demo", "--out", ""], "--out"),
    *[(["demo", "--out", "out", "--budget", v], "--budget") for v in ["0", "-1", "nan"]],
    *[(["demo", "--out", "out", "--iters", v], "--iters") for v in ["0", "-1", "1.5"]],
    *[(["eval", RUN, "--downsample", v], "--downsample") for v in ["0", "nan", "1e6"]],
    *[(["eval", RUN, "--ranks", v], "--ranks") for v in ["0", "abc", "", "1,,x", "-1,2", "5000"]],
    (["eval", RUN, "--split", "nope"], "--split"),
    *[(["render", RUN, "--orbit", v, "--out", "o.mp4"], "--orbit") for v in ["0", "-1", "10000000"]],
    (["render", RUN, "--fps", "0", "--out", "o.mp4"], "--fps"),
    *[(["render", RUN, "--out", out], "--out") for out in ["x.avi", "orbit.txt", "orbit", "", ".mp4"]],
    *[(["view", RUN, "--port", v], "--port") for v in ["0", "-1", "70000", "abc"]],
    (["view", RUN, "--device", "nope"], "--device"),
    *[(["export-mesh", RUN, "--out", "m.ply", "--resolution", v], "--resolution") for v in ["0", "1", "100000"]],
    *[(["export-mesh", RUN, "--out", "m.ply", "--level", v], "--level") for v in ["-0.5", "0", "1", "1.5", "nan"]],
    (["export-mesh", RUN, "--out", "m.ply", "--faces", "-1"], "--faces"),
    (["export-mesh", RUN, "--out", "m.ply", "--method", "tsdf", "--orbit", "-1"], "--orbit"),
    *[(["export-mesh", RUN, "--out", out], "--out") for out in ["m.stl", "mesh", ""]],
    (["export-mesh", RUN, "--out", "m.ply", "--device", "nope"], "--device"),
    *[(["slim", RUN, "--rank", v, "--out", "out"], "--rank") for v in ["0", "-1", "5000"]],
    *[(["colmap", "photos", flag, v], flag) for flag, v in [("--max-size", "0"), ("--threads", "0"), ("--threads", "-5"), ("--matcher", "x")]],
    *[(["bench", "train", "--data", SCENE, "--budget", v], "--budget") for v in ["-1", "nan"]],
    (["bench", "train", "--data", SCENE, "--budget", "5", "--eval-every", "0"], "--eval-every"),
    (["bench", "train", "--data", SCENE, "--budget", "5", "--eval-views", "0"], "--eval-views"),
    (["bench", "train", "--data", SCENE, "--budget", "5", "--grid-init", "1"], "--grid-init"),
    *[
        (["bench", "march", flag, v], flag)
        for flag, v in [("--rays", "0"), ("--rays", "10000000000"), ("--resolution", "0"), ("--resolution", "100000"), ("--repeats", "0")]
    ],
    (["bench", "march", "--device", "nope"], "--device"),
    (["bench", "factors", "--repeats", "0"], "--repeats"),
    *[(["bench", "render", "--run", RUN, flag, v], flag) for flag, v in [("--size", "0"), ("--size", "1000000"), ("--frames", "0"), ("--budget", "-1")]],
    *[(["bench", "mesh", flag, v], flag) for flag, v in [("--resolution", "0"), ("--threshold", "0"), ("--threshold", "2"), ("--budget", "nan")]],
    *[
        (["bench", "slim", "--data", SCENE, flag, v], flag)
        for flag, v in [("--downsample", "0"), ("--ranks", "0"), ("--budget", "0"), ("--eval-views", "-1"), ("--upsilon", "0"), ("--eta", "-1")]
        + [("--field", "nope")]
    ],
]


@pytest.mark.parametrize("argv, flag", BAD_FLAGS, ids=[" ".join(argv[:1] + argv[-2:]) for argv, _ in BAD_FLAGS])
def test_bad_flag_value_is_refused_by_the_parser(
    argv: list[str], flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    command = " ".join(argv[:2]) if argv[0] == "bench" else argv[0]
    assert errors[0].startswith(f"tensorfields {command}: error: argument {flag}"), errors[0]
    assert list(tmp_path.iterdir()) == [], "nothing may be written"


def _numeric_actions(parser: argparse.ArgumentParser, prog: str = "tensorfields") -> list[tuple[str, argparse.Action]]:
    """(command, action) of every flag of `parser` and its subcommands."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _numeric_actions(sub, f"{prog} {name}")
        elif action.option_strings or action.dest not in ("help",):
            found.append((prog, action))
    return found




def test_no_flag_is_a_bare_int_or_float() -> None:
    declared = [
        (f"{prog} {action.option_strings[0] if action.option_strings else action.dest}", action)
        for prog, action in _numeric_actions(build_parser())
    ]
    bare = [name for name, action in declared if action.type in (int, float)]
    assert bare == [], f"numeric flags without a range check: {bare}"


def test_auto_values_stay_allowed() -> None:
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--batch-size", "0", "--grid-init", "0", "--grid-final", "0"])
    assert (args.batch_size, args.grid_init, args.grid_final) == (0, 0, 0)
    args = build_parser().parse_args(["export-mesh", "r", "--out", "m.GLB", "--faces", "0", "--orbit", "0"])
    assert args.out == "m.GLB" and args.faces == 0 and args.orbit == 0
    args = build_parser().parse_args(["render", "r", "--out", "a/b.GIF", "--orbit", "3600"])
    assert args.orbit == 3600
    assert build_parser().parse_args(["eval", "r", "--ranks", " 1, 2,16 "]).ranks == " 1, 2,16 "


def test_grid_init_above_grid_final_is_refused_before_any_work(
    sphere_scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["train", "--data", str(sphere_scene), "--out", str(out), "--grid-init", "32", "--grid-final", "16"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == "tensorfields train: error: --grid-init 32 is above --grid-final 16: the grid only grows during training"
    assert not out.exists()


def test_device_without_cuda_names_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(argparse.ArgumentTypeError, match="no CUDA device"):
        types.device("cuda")
    assert types.device("CPU") == "cpu"


@pytest.mark.parametrize(
    "check, text, message",
    [
        (types.seconds, "-1", "must be a number of seconds above 0 and at most 1000000, got -1"),
        (types.downsample, "nan", "must be an image downsampling factor from 1 to 64, got nan"),
        (types.positive_int(3600, "frames"), "0", "must be a whole number of frames from 1 to 3600, got 0"),
        (types.whole(8, 1024, auto=0, auto_means="auto"), "4", "must be 0 (auto) or a whole number from 8 to 1024, got 4"),
        (types.port, "0", "must be a port number from 1 to 65535, got 0"),
        (types.extension(".mp4", ".gif"), "x.avi", "must be a .mp4 or .gif file, got 'x.avi'"),
        (types.rank_list, "1,x", "must be comma-separated whole numbers such as 1,2,4,8,16, got '1,x'"),
    ],
)
def test_messages(check, text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        check(text)
    assert str(info.value) == message
