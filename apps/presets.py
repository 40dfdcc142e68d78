"""Per-field, per-scene-kind defaults taken from TensoRF's configs."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["field_kwargs", "regularization_weights"]


def field_kwargs(name: str, ndc: bool, scene_aabb: torch.Tensor | None = None) -> dict[str, Any]:
    """Constructor arguments (besides box and resolution) for a field on a bounded or NDC scene.

    VM: lego config (16/48 components, MLP with PE 2) and flower config for forward-facing
    scenes (16,4,4 / 48,12,12 components, no PE). CP: 96/288 components.
    """
    if name == "vm":
        if ndc:
            return {"density_components": [16, 4, 4], "appearance_components": [48, 12, 12], "decoder": "mlp", "decoder_pe": 0}
        return {"density_components": 16, "appearance_components": 48, "decoder": "mlp"}
    if name == "cp":
        return {"density_components": 96, "appearance_components": 288, "decoder": "mlp"}
    return {}


def regularization_weights(ndc: bool, shrunk: bool) -> dict[str, float]:
    """TensoRF: L1 8e-5 then 4e-5 after the shrink on bounded scenes; TV 1.0 on forward-facing ones."""
    if ndc:
        return {"l1": 0.0, "tv_density": 1.0, "tv_appearance": 1.0}
    return {"l1": 4e-5 if shrunk else 8e-5, "tv_density": 0.0, "tv_appearance": 0.0}
