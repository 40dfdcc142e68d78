"""Scene representations. Every field implements `fields.base.Field`; one folder per family
(`tensorf/`: VM and CP, `strivec/`: tri-vector, `gaussians/`: Gaussian splat tensors,
`hashgrid/`: instant-ngp's hash grid), registered by name in `FIELDS`."""

from __future__ import annotations

from typing import Any

from .base import Blurrable, Decoded, Densifiable, Field, Placeable, Regularized, SelfOccupying, Slimmable, Upsampleable, Voxelized, render_step_size
from .gaussians import GaussianField
from .hashgrid import HashGridField
from .strivec import TriVecField
from .tensorf import CPField, VMField

__all__ = [
    "Field",
    "Upsampleable",
    "Slimmable",
    "Placeable",
    "Voxelized",
    "Decoded",
    "Regularized",
    "Blurrable",
    "Densifiable",
    "SelfOccupying",
    "render_step_size",
    "VMField",
    "CPField",
    "TriVecField",
    "GaussianField",
    "HashGridField",
    "FIELDS",
    "field_class",
    "field_from_config",
]

#: registry of field classes by their command-line / checkpoint name: a new field is one line here
FIELDS: dict[str, type[Field]] = {cls.name: cls for cls in (VMField, CPField, TriVecField, GaussianField, HashGridField)}


def field_class(name: str) -> type[Field]:
    """The registered field class called `name`; a ValueError naming the known ones otherwise."""
    if name not in FIELDS:
        raise ValueError(f"unknown field '{name}' (known: {', '.join(sorted(FIELDS))})")
    return FIELDS[name]


def field_from_config(name: str, cfg: dict[str, Any]) -> Field:
    """Rebuild a field from its registry name and `config()` dict."""
    return field_class(name).from_config(cfg)
