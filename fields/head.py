"""What the factorized fields (VM, CP, tri-vector) share after their factors: TensoRF's density
activation and appearance decoder, the optional per-image appearance codes, with their settings
and config entries."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .appearance import APPEARANCE_CODE_DIM, LR_CODES, AppearanceCodes
from .decoders import make_decoder

__all__ = ["FeatureHead", "head_state_shapes"]


class FeatureHead:
    """Mixin for an `nn.Module` field: sigma = distance_scale * softplus(feature + density_shift),
    and the decoder (`self.decoder`, "mlp" or "sh", `decoder_pe` positional-encoding frequencies)
    that turns `[N, appearance_dim]` appearance features and view directions into colour; with
    `appearance_codes > 0`, `self.codes` holds that many per-image codes of width
    `appearance_code_dim` (see `fields.appearance`), fed to the decoder beside the features
    (None without). Call `_init_head` in `__init__` after `nn.Module.__init__`."""

    def _init_head(
        self,
        appearance_dim: int,
        decoder: str,
        decoder_pe: int,
        density_shift: float,
        distance_scale: float,
        appearance_codes: int = 0,
        appearance_code_dim: int = APPEARANCE_CODE_DIM,
    ) -> None:
        self.appearance_dim = appearance_dim
        self.decoder_kind = decoder
        self.decoder_pe = decoder_pe
        self.density_shift = density_shift
        self.distance_scale = distance_scale
        self.appearance_code_dim = appearance_code_dim
        self.decoder = make_decoder(decoder, appearance_dim, decoder_pe, appearance_code_dim if appearance_codes > 0 else 0)
        self.codes = AppearanceCodes(appearance_codes, appearance_code_dim) if appearance_codes > 0 else None

    def _activate_density(self, feature: torch.Tensor) -> torch.Tensor:
        """Raw density feature `[N]` -> sigma `[N]` (world units)."""
        return F.softplus(feature + self.density_shift) * self.distance_scale

    def _decode(self, features: torch.Tensor, d: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        """Appearance features `[N, appearance_dim]` seen along unit `d [N, 3]` -> RGB `[N, 3]`,
        coloured by `code` (see `fields.appearance`; ignored without codes)."""
        if self.codes is None:
            return self.decoder(features, d)
        return self.decoder(features, d, self.codes(code, features.shape[0]))

    def _codes_groups(self) -> list[dict[str, Any]]:
        """The optimizer group "codes" at `LR_CODES`, or none without codes."""
        return [] if self.codes is None else [{"name": "codes", "params": [self.codes.weight], "lr": LR_CODES}]

    def _head_config(self) -> dict[str, Any]:
        return {
            "appearance_dim": self.appearance_dim,
            "decoder": self.decoder_kind,
            "decoder_pe": self.decoder_pe,
            "density_shift": self.density_shift,
            "distance_scale": self.distance_scale,
            "appearance_codes": 0 if self.codes is None else self.codes.weight.shape[0],
            "appearance_code_dim": self.appearance_code_dim,
        }


def head_state_shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Shapes of the decoder's and the codes' state (`decoder.*`, `codes.weight`) for a field
    config holding `_head_config()`'s entries (defaults where an older config lacks them)."""
    appearance_dim = int(cfg.get("appearance_dim", 27))
    codes, code_dim = int(cfg.get("appearance_codes", 0)), int(cfg.get("appearance_code_dim", APPEARANCE_CODE_DIM))
    with torch.device("meta"):
        decoder = make_decoder(cfg.get("decoder", "mlp"), appearance_dim, cfg.get("decoder_pe", 2), code_dim if codes > 0 else 0)
    shapes = {f"decoder.{name}": tuple(value.shape) for name, value in decoder.state_dict().items()}
    if codes > 0:
        shapes["codes.weight"] = (codes, code_dim)
    return shapes
