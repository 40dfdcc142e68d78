"""Argument checks for the public ops: what reaches a kernel is the right shape, dtype, device
and layout, or the caller gets an error naming the argument."""

from __future__ import annotations

import torch

__all__ = ["check_tensor"]


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
