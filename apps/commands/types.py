"""Argument types of the `tensorfields` flags: each turns a flag's text into its value or raises
`argparse.ArgumentTypeError`, which argparse prints as one line naming the flag and exits with
code 2, before any work is done:

    tensorfields train: error: argument --budget: must be a number of seconds above 0 and at most 1000000, got -1

Numbers reject NaN, infinities and values outside a stated range (absurd values too, so a typo
cannot ask for a 100000^3 grid); a few flags also take 0 to mean "choose for me".
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "whole",
    "real",
    "positive_int",
    "non_negative_int",
    "positive_float",
    "finite_float_in",
    "seconds",
    "downsample",
    "port",
    "device",
    "extension",
    "run_folder",
    "rank_list",
    "field_name",
    "MAX_SECONDS",
    "MAX_DOWNSAMPLE",
    "MAX_FRAMES",
    "MAX_GRID",
    "MAX_RANK",
]

#: the largest --budget (and other durations) in seconds: about 11.5 days
MAX_SECONDS = 1_000_000
#: the largest image downsampling factor (scene loaders need >= 1)
MAX_DOWNSAMPLE = 64
#: the most frames of a video path
MAX_FRAMES = 3600
#: the largest grid resolution per axis (1024^3 voxels)
MAX_GRID = 1024
#: the largest rank of --rank / --ranks (the field's own rank is checked when it is loaded)
MAX_RANK = 1024


def _number(value: float) -> str:
    """1000000.0 -> "1000000", 0.5 -> "0.5"."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def whole(low: int, high: int, unit: str = "", auto: int | None = None, auto_means: str = "auto") -> Callable[[str], int]:
    """A whole number from `low` to `high` (or exactly `auto`, which means `auto_means`)."""
    noun = f"a whole number of {unit}" if unit else "a whole number"
    span = f"{noun} from {low} to {high}"
    if auto is not None:
        span = f"{auto} ({auto_means}) or {span}"

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {span}, got {text!r}") from None
        if value == auto or low <= value <= high:
            return value
        raise argparse.ArgumentTypeError(f"must be {span}, got {value}")

    return parse


def real(
    low: float, high: float, unit: str = "", low_open: bool = False, high_open: bool = False, noun: str | None = None
) -> Callable[[str], float]:
    """A finite number in the range from `low` to `high` (each end excluded when `*_open`)."""
    noun = noun or (f"a number of {unit}" if unit else "a number")
    if not (low_open or high_open):
        span = f"{noun} from {_number(low)} to {_number(high)}"
    else:
        lower = f"above {_number(low)}" if low_open else f"at least {_number(low)}"
        upper = f"below {_number(high)}" if high_open else f"at most {_number(high)}"
        span = f"{noun} {lower} and {upper}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {span}, got {text!r}") from None
        inside = math.isfinite(value) and (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
        if not inside:
            raise argparse.ArgumentTypeError(f"must be {span}, got {text.strip()}")
        return value

    return parse


def positive_int(high: int, unit: str = "") -> Callable[[str], int]:
    """A whole number from 1 to `high`."""
    return whole(1, high, unit)


def non_negative_int(high: int, unit: str = "", zero_means: str | None = None) -> Callable[[str], int]:
    """A whole number from 0 to `high` (`zero_means`: what 0 does, when it is special)."""
    return whole(1, high, unit, auto=0, auto_means=zero_means) if zero_means else whole(0, high, unit)


def positive_float(high: float, unit: str = "") -> Callable[[str], float]:
    """A finite number above 0 and at most `high`."""
    return real(0, high, unit, low_open=True)


def finite_float_in(low: float, high: float, unit: str = "") -> Callable[[str], float]:
    """A finite number from `low` to `high`, both included."""
    return real(low, high, unit)


#: --budget and other durations
seconds = positive_float(MAX_SECONDS, "seconds")
#: --downsample: what `data.load_scene` accepts (>= 1), up to `MAX_DOWNSAMPLE`
downsample = real(1, MAX_DOWNSAMPLE, noun="an image downsampling factor")


def port(text: str) -> int:
    """A TCP port, 1 to 65535."""
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {value}")
    return value


def device(text: str) -> str:
    """cpu, cuda or cuda:N, where N is a CUDA device of this machine (torch is imported only
    for a CUDA device)."""
    match = re.fullmatch(r"cpu|cuda(?::(\d+))?", text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"must be cpu, cuda or cuda:N, got {text!r}")
    value = match.group(0)
    if value.startswith("cuda"):
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError(f"{value}: this machine has no CUDA device torch can use; use --device cpu")
        index = int(match.group(1) or 0)
        if index >= count:
            raise argparse.ArgumentTypeError(f"{value}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return value


def extension(*suffixes: str) -> Callable[[str], str]:
    """A file name ending in one of `suffixes` (case-insensitive); the text unchanged."""
    allowed = ", ".join(suffixes[:-1]) + f" or {suffixes[-1]}" if len(suffixes) > 1 else suffixes[0]

    def parse(text: str) -> str:
        path = Path(text)
        if not text.strip() or path.suffix.lower() not in suffixes or not path.stem:
            shown = "" if path.suffix else " (no extension)"
            raise argparse.ArgumentTypeError(f"must be a {allowed} file, got {text!r}{shown}")
        return text

    return parse


def run_folder(text: str) -> str:
    """A run folder to write, named (an empty text would be the current folder by accident:
    `--out "$UNSET_VARIABLE"`; `.` says so on purpose); the text unchanged."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must name a run folder, got {text!r} (use . for the current folder)")
    return text


def rank_list(text: str) -> str:
    """Comma-separated ranks from 1 to `MAX_RANK`, e.g. 1,2,4,8,16; the text unchanged (the
    commands read it with `evaluate.parse_ranks`)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(re.fullmatch(r"\d+", part) for part in parts):
        raise argparse.ArgumentTypeError(f"must be comma-separated whole numbers such as 1,2,4,8,16, got {text!r}")
    bad = [part for part in parts if not 1 <= int(part) <= MAX_RANK]
    if bad:
        raise argparse.ArgumentTypeError(f"ranks must be from 1 to {MAX_RANK}, got {bad[0]} in {text!r}")
    return text


#: --perturb-poses: the largest rotation (degrees) and translation (fraction of the scene radius)
MAX_PERTURB_DEGREES, MAX_PERTURB_FRACTION = 45.0, 0.5


def perturbation(text: str) -> tuple[float, float]:
    """ROT_DEG,TRANS_FRAC: a rotation from 0 to `MAX_PERTURB_DEGREES` degrees and a translation
    from 0 to `MAX_PERTURB_FRACTION` of the scene radius, e.g. 3,0.03."""
    parts = text.split(",")
    try:
        degrees, fraction = (float(part) for part in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        degrees = fraction = math.nan
    if not (0.0 <= degrees <= MAX_PERTURB_DEGREES and 0.0 <= fraction <= MAX_PERTURB_FRACTION):
        raise argparse.ArgumentTypeError(
            f"must be ROT_DEG,TRANS_FRAC with degrees from 0 to {_number(MAX_PERTURB_DEGREES)} and a fraction of the "
            f"scene radius from 0 to {_number(MAX_PERTURB_FRACTION)}, such as 3,0.03; got {text!r}"
        )
    return degrees, fraction


def field_name(text: str) -> str:
    """A name of `fields.FIELDS` (vm, cp, trivec, ...)."""
    from fields import FIELDS

    if text not in FIELDS:
        raise argparse.ArgumentTypeError(f"unknown field {text!r} (known: {', '.join(sorted(FIELDS))})")
    return text
