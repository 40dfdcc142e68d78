"""Lazy build and load of the native extension (never at import time).

The C++ sources are always compiled; the CUDA sources too when torch has CUDA and nvcc is found.
A failed build is remembered with its reason, logged once, and the reference ops are used.
Set TENSORFIELDS_REFERENCE=1 to force the pure-torch reference (tests, debugging).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

__all__ = ["native", "kernels_for", "status", "reference_forced", "FORCE_REFERENCE_ENV"]

FORCE_REFERENCE_ENV = "TENSORFIELDS_REFERENCE"
_CSRC = Path(__file__).resolve().parent / "csrc"
_log = logging.getLogger("tensorfields.cuda_ext")
_state: dict[str, Any] = {"tried": False, "module": None, "error": None, "cuda": False}


def _sources(with_cuda: bool) -> list[str]:
    cpu = [_CSRC / "ext.cpp", *sorted(_CSRC.glob("*/*_cpu.cpp"))]
    cuda = [*sorted(_CSRC.glob("*/*_cuda.cpp")), *sorted(_CSRC.glob("*/*.cu"))] if with_cuda else []
    return [str(p) for p in cpu + cuda]


def _build_directory(with_cuda: bool) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tensorfields" / "extensions"
    # one folder per checkout too: torch rebuilds when the recorded source paths change
    checkout = hashlib.sha1(str(_CSRC).encode()).hexdigest()[:10]
    path = root / f"torch{torch.__version__.replace('+', '_')}-{'cuda' if with_cuda else 'cpu'}-{checkout}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def native() -> ModuleType | None:
    """The built extension module, building it on first call; None when unavailable or forced off."""
    if os.environ.get(FORCE_REFERENCE_ENV, "") not in ("", "0"):
        return None
    if _state["tried"]:
        return _state["module"]
    _state["tried"] = True
    with_cuda = torch.cuda.is_available() and shutil.which("nvcc") is not None
    try:
        from torch.utils.cpp_extension import load

        _put_ninja_on_path()
        # -fopenmp: at::parallel_for is OpenMP code compiled into its caller (serial without it);
        # the extension then shares torch's libgomp, so torch.set_num_threads applies to it too
        flags = ["-O3", "-ffp-contract=off", "-fopenmp"] + (["-DTENSORFIELDS_WITH_CUDA"] if with_cuda else [])
        _state["module"] = load(
            name="tensorfields_native",
            sources=_sources(with_cuda),
            extra_cflags=flags,
            extra_ldflags=["-fopenmp"],
            extra_cuda_cflags=["-O3", "--fmad=false", "-DTENSORFIELDS_WITH_CUDA"],
            build_directory=str(_build_directory(with_cuda)),
            verbose=False,
        )
        _state["cuda"] = with_cuda
    except Exception as error:  # a failed build must never stop the program: fall back, say why once
        _state["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else error}"
        _log.warning("tensorfields native extension unavailable, using the pure-torch reference (%s)", _state["error"])
    return _state["module"]


def kernels_for(device: torch.device) -> ModuleType | None:
    """The native module when it is built and has kernels for `device`, else None (reference)."""
    module = native()
    if module is None or (device.type == "cuda" and not status()["cuda"]):
        return None
    return module


def _put_ninja_on_path() -> None:
    """torch builds with the `ninja` executable; the PyPI package may sit outside PATH (a venv
    that is not activated, a pyenv without rehash), so put its folder first."""
    import ninja

    os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


def status() -> dict[str, Any]:
    """What was built and why not: {"native": bool, "cuda": bool, "forced_reference": bool, "error": str | None}."""
    forced = os.environ.get(FORCE_REFERENCE_ENV, "") not in ("", "0")
    module = None if forced else native()
    return {"native": module is not None, "cuda": bool(_state["cuda"]), "forced_reference": forced, "error": _state["error"]}


@contextmanager
def reference_forced(forced: bool = True) -> Iterator[None]:
    """Run a block on the pure-torch reference (forced) or on the native kernels where built,
    whatever TENSORFIELDS_REFERENCE says outside it (side-by-side benchmarks)."""
    previous = os.environ.get(FORCE_REFERENCE_ENV)
    os.environ[FORCE_REFERENCE_ENV] = "1" if forced else "0"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[FORCE_REFERENCE_ENV]
        else:
            os.environ[FORCE_REFERENCE_ENV] = previous
