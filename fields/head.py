"""What the factorized fields (VM, CP, tri-vector) share after their factors: TensoRF's density
activation and appearance decoder, with their settings and config entries."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .decoders import make_decoder

__all__ = ["FeatureHead"]


class FeatureHead:
    """Mixin for an `nn.Module` field: sigma = distance_scale * softplus(feature + density_shift),
    and the decoder (`self.decoder`, "mlp" or "sh", `decoder_pe` positional-encoding frequencies)
    that turns `[N, appearance_dim]` appearance features and view directions into colour.
    Call `_init_head` in `__init__` after `nn.Module.__init__`."""

    def _init_head(self, appearance_dim: int, decoder: str, decoder_pe: int, density_shift: float, distance_scale: float) -> None:
        self.appearance_dim = appearance_dim
        self.decoder_kind = decoder
        self.decoder_pe = decoder_pe
        self.density_shift = density_shift
        self.distance_scale = distance_scale
        self.decoder = make_decoder(decoder, appearance_dim, decoder_pe)

    def _activate_density(self, feature: torch.Tensor) -> torch.Tensor:
        """Raw density feature `[N]` -> sigma `[N]` (world units)."""
        return F.softplus(feature + self.density_shift) * self.distance_scale

    def _head_config(self) -> dict[str, Any]:
        return {
            "appearance_dim": self.appearance_dim,
            "decoder": self.decoder_kind,
            "decoder_pe": self.decoder_pe,
            "density_shift": self.density_shift,
            "distance_scale": self.distance_scale,
        }
