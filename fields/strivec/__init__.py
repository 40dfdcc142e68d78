"""Strivec's sparse multi-scale tri-vector field: the field and its placement / lookup index."""

from .field import Slots, TriVecField, TriVecScale, scale_sizes

__all__ = ["TriVecField", "TriVecScale", "Slots", "scale_sizes"]
