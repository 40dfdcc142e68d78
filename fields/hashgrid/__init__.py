"""instant-ngp's hash-grid field (`field.py`: the native hash encoding and torch MLPs) and its
tiny-cuda-nn backend (`tcnn.py`, CUDA only, imported when used)."""

from .field import BACKENDS, HashGridField, trunc_exp

__all__ = ["HashGridField", "trunc_exp", "BACKENDS"]
