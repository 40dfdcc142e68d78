"""Argument checks for the public ops: what reaches a kernel is the right shape, dtype, device
and layout, or the caller gets an error naming the argument.

Two kinds of check, with different costs:

* `check_tensor` reads only metadata (shape, dtype, device, strides). It always runs.
* The value checks below (`check_packed_info`, `check_index_range`) read tensor contents: on
  CUDA each one copies a result to the host, i.e. a device sync per call, which stalls the
  per-batch hot path (marching, compositing, sampling). They run only when the environment
  variable `TENSORFIELDS_DEBUG` is set to anything but "" or "0", read by `debug_checks()` at
  every call (so `monkeypatch.setenv` flips it in tests; one dictionary lookup per op call).
  Callers guard them: `if debug_checks(): check_...(...)`.

With the switch off the ops trust the values they are given, as nerfacc does: packed offsets,
occupancy cell indices and tri-vector tensor indices must be in range (the ops' own outputs
always are); a native kernel given out-of-range ones reads or writes outside its buffers.
Turn `TENSORFIELDS_DEBUG=1` on when feeding the ops anything hand-made.
"""

from __future__ import annotations

import os

import torch

__all__ = ["DEBUG_ENV", "VALUE_CHECKS", "debug_checks", "check_tensor", "check_packed_info", "check_index_range"]

DEBUG_ENV = "TENSORFIELDS_DEBUG"

#: the checks that read tensor values (run only under `debug_checks()`)
VALUE_CHECKS = ("check_packed_info", "check_index_range")


def debug_checks() -> bool:
    """Whether the value checks run: `TENSORFIELDS_DEBUG` set to anything but "" or "0"."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def check_tensor(
    name: str,
    value: object,
    shape: tuple[int | None, ...],
    dtype: torch.dtype,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Raise TypeError/ValueError unless `value` is a contiguous tensor of `dtype` and `shape`
    (None matches any size) on `device`; returns it."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dtype != dtype:
        raise TypeError(f"{name} must be {dtype}, got {value.dtype}")
    if value.dim() != len(shape) or any(want is not None and got != want for got, want in zip(value.shape, shape)):
        expected = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name} must have shape {expected}, got {list(value.shape)}")
    if device is not None and value.device != device:
        raise ValueError(f"{name} is on {value.device}, expected {device} like the rays")
    if not value.is_contiguous():
        raise ValueError(f"{name} must be contiguous (call .contiguous())")
    return value


def check_packed_info(packed_info: torch.Tensor, num_samples: int) -> None:
    """(Value check.) Every (first, count) row of `packed_info [R, 2]` lies inside `num_samples` samples."""
    if packed_info.shape[0] > 0:
        first, count = packed_info[:, 0], packed_info[:, 1]
        if bool(((first < 0) | (count < 0) | (first + count > num_samples)).any()):
            raise ValueError(f"packed_info has (first, count) rows outside the {num_samples} samples")


def check_index_range(indices: torch.Tensor, low: int, high: int, message: str) -> None:
    """(Value check.) Raise ValueError(message) unless every entry of `indices` is in [low, high)."""
    if indices.numel() > 0 and bool(((indices < low) | (indices >= high)).any()):
        raise ValueError(message)
