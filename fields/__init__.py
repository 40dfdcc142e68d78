"""Scene representations. Every field implements `fields.base.Field`."""

from __future__ import annotations

from typing import Any

from .base import Field, Placeable, Slimmable, Upsampleable
from .cp import CPField
from .trivec import TriVecField
from .vm import VMField

__all__ = [
    "Field",
    "Upsampleable",
    "Slimmable",
    "Placeable",
    "VMField",
    "CPField",
    "TriVecField",
    "FIELDS",
    "field_from_config",
]

#: registry of field classes by their command-line / checkpoint name
FIELDS: dict[str, type[Field]] = {cls.name: cls for cls in (VMField, CPField, TriVecField)}


def field_from_config(name: str, cfg: dict[str, Any]) -> Field:
    """Rebuild a field from its registry name and `config()` dict."""
    if name not in FIELDS:
        raise ValueError(f"unknown field '{name}' (known: {', '.join(sorted(FIELDS))})")
    return FIELDS[name].from_config(cfg)
