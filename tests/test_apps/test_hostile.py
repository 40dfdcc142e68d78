"""`tensorfields bench hostile`: the catalogue's machinery (classification rules, the catalogue's
shape, a few real cases run end to end), not today's counts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from apps.bench.hostile import (
    EXPECTS,
    KINDS,
    VERDICTS,
    Case,
    Hostile,
    Outcome,
    bench_hostile,
    catalogue,
    classify,
    message_lines,
    names_any,
    normalise,
)

USAGE = "usage: tensorfields train [-h] --data DATA [--field FIELD]\n                          [--iters ITERS] --out OUT\n"


def _case(expect: str = "error", about: list[str] | None = None) -> Case:
    return Case("case", "flag", ["train"], expect, "a note", about or [])


def _verdict(outcome: Outcome, expect: str = "error", about: list[str] | None = None, normal: set[str] | None = None) -> str:
    return classify(_case(expect, about), outcome, frozenset(normal or ()))[0]


def test_failures_are_clear_only_as_one_line_naming_the_flag() -> None:
    argparse_error = USAGE + "tensorfields train: error: argument --iters: invalid int value: 'nan'\n"
    assert _verdict(Outcome(rc=2, stderr=argparse_error), about=["--iters"]) == "clear"
    assert _verdict(Outcome(rc=2, stderr="tensorfields train: error: grid_init must be >= 2\n"), about=["--grid-init"]) == "clear"
    assert _verdict(Outcome(rc=2, stderr="tensorfields train: error: bad value\n"), about=["--iters"]) == "unclear"
    assert _verdict(Outcome(rc=2, stderr="one\ntwo\n"), about=["--iters"]) == "unclear"
    assert _verdict(Outcome(rc=1, stderr="Traceback (most recent call last):\n  File x\nValueError: --iters\n"), about=["--iters"]) == "unclear"
    assert _verdict(Outcome(rc=3, stderr="error: --iters\n"), about=["--iters"]) == "unclear"


def test_wrong_successes_crashes_hangs_and_allocations_are_broken() -> None:
    assert _verdict(Outcome(rc=0, stdout="run: PSNR nan dB")) == "broken"
    assert _verdict(Outcome(rc=-9)) == "broken"
    assert _verdict(Outcome(rc=None, timed_out=True)) == "broken"
    assert _verdict(Outcome(rc=2, stderr="error: RuntimeError: DefaultCPUAllocator: can't allocate memory\n")) == "broken"
    assert _verdict(Outcome(rc=2, stderr="error: x\n", max_rss_mb=9000.0)) == "broken"
    assert _verdict(Outcome(rc=2, stderr="error: x\n"), expect="success") == "broken"
    assert _verdict(Outcome(rc=0), expect="success") == "clear"
    assert _verdict(Outcome(rc=0), expect="either") == "clear"
    assert _verdict(Outcome(rc=0, verdict="broken", reason="served a foreign Host"), expect="either") == "broken"


def test_checks_can_only_make_a_verdict_worse() -> None:
    case = Case("c", "run-folder", ["train"], "success", "note", check=lambda outcome: ("broken", "orphaned temporary files"))
    verdict, reason, _ = classify(case, Outcome(rc=0))
    assert verdict == "broken" and "orphaned" in reason
    case.check = lambda outcome: ("clear", "fine")
    assert classify(case, Outcome(rc=-9))[0] == "broken"


def test_normal_stderr_lines_and_progress_are_not_messages() -> None:
    normal = {normalise("native extension: C++ (CPU) 12 ms", "/tmp/x")}
    stderr = "native extension: C++ (CPU) 7 ms\n 10%|#   | 3/30 [00:01<00:09, 2.9it/s]\rtensorfields eval: error: /tmp/x/run: no checkpoint\n"
    lines = message_lines(stderr, normal, "/tmp/x")
    assert lines == ["tensorfields eval: error: /tmp/x/run: no checkpoint"]
    assert message_lines(USAGE + "tensorfields train: error: argument --out: expected one argument\n") == [
        "tensorfields train: error: argument --out: expected one argument"
    ]


def test_what_names_a_flag_or_a_file() -> None:
    assert names_any("argument --iters: invalid int value", ["--iters"])
    assert names_any("grid_init must be at least 2", ["--grid-init"])
    assert not names_any("trained without a checkpoint", ["--out"])  # "out" alone is a word, not the flag
    assert names_any("/tmp/r/run/checkpoint.safetensors: truncated", ["/elsewhere/checkpoint.safetensors"])
    assert not names_any("something failed", ["/tmp/r/run", "--out"])


def test_the_catalogue_is_large_and_well_formed(tmp_path: Path) -> None:
    cases = catalogue(Hostile(tmp_path, sys.executable, None))
    ids = [case.id for case in cases]
    assert len(cases) >= 100 and len(set(ids)) == len(ids)
    assert {case.kind for case in cases} == set(KINDS)
    assert all(case.expect in EXPECTS and case.note and case.argv for case in cases)
    assert all(case.about for case in cases if case.kind == "flag"), "a flag case names its flag"


def test_a_few_cases_run_and_are_classified(tmp_path: Path) -> None:
    selected = ["flag-train-iters-nan", "flag-eval-ranks-abc", "ckpt-zero-bytes"]
    out = tmp_path / "hostile.json"
    args = argparse.Namespace(json=str(out), only=",".join(selected), python=sys.executable, pythonpath=None, jobs=2, keep=False, list=False)
    report = bench_hostile(args)
    rows = {row["id"]: row for row in report["cases"]}
    assert sorted(rows) == sorted(selected)
    for row in rows.values():
        assert row["verdict"] in VERDICTS and row["reason"]
        assert row["rc"] is not None and not row["timed_out"]
    # argparse rejects a NaN --iters with one line naming it, in every version of the CLI
    assert rows["flag-train-iters-nan"]["verdict"] == "clear", rows["flag-train-iters-nan"]
    assert "--iters" in rows["flag-train-iters-nan"]["first_line"]
    assert report["counts"]["all"]["cases"] == 3
    assert json.loads(out.read_text())["counts"] == report["counts"]
