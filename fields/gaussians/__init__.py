"""Gaussian splat tensors (`field.py`), their lookup grid (`index.py`) and 3DGS `.ply` files (`ply.py`)."""

from .field import GaussianField
from .ply import SplatFileError, Splats, read_splats, write_splats

__all__ = ["GaussianField", "Splats", "SplatFileError", "read_splats", "write_splats"]
