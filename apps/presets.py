"""Per-field, per-scene-kind defaults taken from TensoRF's configs."""

from __future__ import annotations

from typing import Any

import torch

from fields.trivec import scale_sizes

TRIVEC_SCALES = 2

__all__ = ["field_kwargs", "regularization_weights"]


def field_kwargs(name: str, ndc: bool, scene_aabb: torch.Tensor | None = None) -> dict[str, Any]:
    """Constructor arguments (besides box and resolution) for a field on a bounded or NDC scene.

    VM: lego config (16/48 components, MLP with PE 2) and flower config for forward-facing
    scenes (16,4,4 / 48,12,12 components, no PE). CP: 96/288 components. Tri-vector: see
    `trivec_kwargs` (its sizes follow `scene_aabb`, the scene's box), with the decoder of the
    coarse VM it is distilled from.
    """
    if name == "vm":
        if ndc:
            return {"density_components": [16, 4, 4], "appearance_components": [48, 12, 12], "decoder": "mlp", "decoder_pe": 0}
        return {"density_components": 16, "appearance_components": 48, "decoder": "mlp"}
    if name == "cp":
        return {"density_components": 96, "appearance_components": 288, "decoder": "mlp"}
    if name == "trivec":
        return {**trivec_kwargs(scene_aabb), **({"decoder_pe": 0} if ndc else {})}
    return {}


def trivec_kwargs(scene_aabb: torch.Tensor | None) -> dict[str, Any]:
    """Strivec sized for a CPU budget: its two coarser scales (half-sizes 0.3 / 0.15 and lattice
    spacings 0.4 / 0.2 of a scene box 3.0 wide, taken from the scene's box, not the shrunk one the
    coarse stage ends with) with fewer components than its 32/24 density and 48 appearance:
    12/5 density and 16/5 appearance, about half of VM's parameters on lego."""
    kwargs: dict[str, Any] = {"scales": TRIVEC_SCALES, "density_components": [12, 5], "appearance_components": [16, 5], "decoder": "mlp"}
    if scene_aabb is not None:
        kwargs["half_sizes"], kwargs["spacings"] = scale_sizes(scene_aabb, TRIVEC_SCALES)
    return kwargs


def regularization_weights(ndc: bool, shrunk: bool) -> dict[str, float]:
    """TensoRF: L1 8e-5 then 4e-5 after the shrink on bounded scenes; TV 1.0 on forward-facing ones."""
    if ndc:
        return {"l1": 0.0, "tv_density": 1.0, "tv_appearance": 1.0}
    return {"l1": 4e-5 if shrunk else 8e-5, "tv_density": 0.0, "tv_appearance": 0.0}
