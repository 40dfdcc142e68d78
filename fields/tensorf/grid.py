"""Shared machinery of TensoRF-style factorized grid fields (VM, CP).

A subclass stores its density and appearance factors and says how to look them up; this base
class turns them into densities (softplus with shift, scaled to world units), appearance
(basis matrix + decoder), resamples them (upsample), crops them (shrink), regularizes them, and
slims them: components are rank-ordered (`fields.slimming.RankOrdered`), the rank of a factor
being its dimension 1.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..appearance import APPEARANCE_CODE_DIM
from ..base import Field, SceneBox
from ..factors import blur_factor, total_variation
from ..head import FeatureHead
from ..slimming import RankOrdered, active_components

__all__ = ["TensorGridField", "resolution_for_voxels", "LR_FACTORS", "LR_NETWORK", "INITIAL_VOXELS"]

#: TensoRF's base learning rates: grid factors, and the basis matrix and decoder
LR_FACTORS, LR_NETWORK = 0.02, 1e-3
#: TensoRF's starting grid, 128^3 voxels over the box (trainers usually pass a resolution)
INITIAL_VOXELS = 128**3


def resolution_for_voxels(num_voxels: int, aabb: torch.Tensor) -> list[int]:
    """Per-axis grid resolution with about `num_voxels` cubic voxels filling `aabb [2, 3]`."""
    size = (aabb[1] - aabb[0]).double()
    voxel = (size.prod() / num_voxels) ** (1.0 / 3.0)
    return [max(2, int(round(s))) for s in (size / voxel).tolist()]


class TensorGridField(RankOrdered, FeatureHead, Field):
    """Base of factorized grid fields.

    Args:
        aabb: `[2, 3]` box of the field.
        resolution: grid points per axis `[X, Y, Z]`.
        density_components, appearance_components: ranks of the factorizations (subclass-defined
            meaning: per plane-line pair for VM, total for CP).
        appearance_dim: width of the appearance feature after the basis matrix (27 for SH).
        decoder: "mlp" or "sh"; decoder_pe: positional-encoding frequencies of the MLP's inputs.
        appearance_codes: per-image appearance codes for the MLP (0: none; see `fields.appearance`),
            appearance_code_dim: their width.
        density_shift, distance_scale: sigma = distance_scale * softplus(feature + density_shift).
        active_rank: render with this many of the rank-ordered components (None: all of them).
    """

    def __init__(
        self,
        aabb: list[list[float]] | torch.Tensor,
        resolution: list[int],
        density_components: list[int] | int,
        appearance_components: list[int] | int,
        appearance_dim: int = 27,
        decoder: str = "mlp",
        decoder_pe: int = 2,
        density_shift: float = -10.0,
        distance_scale: float = 25.0,
        active_rank: int | None = None,
        appearance_codes: int = 0,
        appearance_code_dim: int = APPEARANCE_CODE_DIM,
    ) -> None:
        super().__init__()
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3).clone())
        self.resolution = [int(r) for r in resolution]
        self.density_components = density_components
        self.appearance_components = appearance_components
        self.reg_weights = {"l1": 0.0, "tv_density": 0.0, "tv_appearance": 0.0}
        self.blur: tuple[float, float] | None = None  # (density, appearance) sigmas in voxels; see `set_blur`
        self._build_factors()
        self.basis = nn.Linear(self._appearance_width(), appearance_dim, bias=False)
        self._init_head(appearance_dim, decoder, decoder_pe, density_shift, distance_scale, appearance_codes, appearance_code_dim)
        self._init_ranks(max(self._density_groups()), active_rank)

    # --- subclass hooks -----------------------------------------------------------------
    def _build_factors(self) -> None:
        raise NotImplementedError

    def _density_groups(self) -> list[int]:
        """Component counts of the density factor groups (per VM pair; one group for CP)."""
        raise NotImplementedError

    def _appearance_groups(self) -> list[int]:
        """Component counts of the appearance groups, in the order of the basis matrix's columns."""
        raise NotImplementedError

    def _appearance_width(self) -> int:
        return sum(self._appearance_groups())

    def _density_feature(self, xn: torch.Tensor) -> torch.Tensor:
        """Normalized points `[N, 3]` -> raw density feature `[N]`."""
        raise NotImplementedError

    def _appearance_feature(self, xn: torch.Tensor) -> torch.Tensor:
        """Normalized points `[N, 3]` -> appearance components `[A, N]` (before the basis)."""
        raise NotImplementedError

    def _resample(self, index_lo: list[int] | None, index_hi: list[int] | None, resolution: list[int]) -> None:
        """Crop every factor to grid indices [lo, hi] per axis (if given), then resample to `resolution`."""
        raise NotImplementedError

    def density_factors(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def density_planes(self) -> list[nn.Parameter]:
        return []

    def appearance_planes(self) -> list[nn.Parameter]:
        return []

    def factor_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def _masked(self, factor: torch.Tensor) -> torch.Tensor:
        """`factor [1, R, ...]` with its components above the active rank scaled by `rank_epsilon`."""
        mask = self.rank_mask(factor.shape[1], factor)
        return factor if mask is None else factor * mask.view(1, -1, *([1] * (factor.dim() - 2)))

    def set_blur(self, sigma_voxels: float | None, density_scale: float = 1.0) -> None:
        """Blur every lookup's factors by a Gaussian of `sigma_voxels` (the density factors by
        `sigma_voxels * density_scale`); None: sharp again (`fields.base.Blurrable`)."""
        self.blur = None if sigma_voxels is None else (sigma_voxels * density_scale, sigma_voxels)

    def _blurred(self, factor: torch.Tensor, density: bool) -> torch.Tensor:
        """`factor` (a plane `[1, R, H, W]` or a line `[1, R, L, 1]`) as lookups see it: blurred
        along its grid axes while `set_blur` is active (a line's axis of size 1 stays as it is),
        else itself."""
        sigma = None if self.blur is None else self.blur[0 if density else 1]
        return blur_factor(factor, sigma, (2, 3)) if sigma else factor

    # --- Field interface ---------------------------------------------------------------
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """World points `[N, 3]` -> box coordinates in [-1, 1] `[N, 3]`."""
        return (x - self.aabb[0]) * (2.0 / (self.aabb[1] - self.aabb[0])) - 1.0

    def _inside(self, xn: torch.Tensor) -> torch.Tensor:
        return (xn.abs() <= 1.0).all(dim=-1)

    def density(self, x: torch.Tensor) -> torch.Tensor:
        xn = self.normalize(x)
        sigma = self._activate_density(self._density_feature(xn))
        return torch.where(self._inside(xn), sigma, torch.zeros_like(sigma))

    def appearance_features(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder input at world points `[N, 3]` -> `[N, appearance_dim]`."""
        return (self.basis.weight @ self._appearance_feature(self.normalize(x))).t()

    def radiance(self, x: torch.Tensor, d: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        return self._decode(self.appearance_features(x), d, code)

    def regularization(self) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = {}
        w = self.reg_weights
        if w["l1"] > 0:
            losses["l1"] = w["l1"] * sum(self._masked(f).abs().mean() for f in self.density_factors())
        if w["tv_density"] > 0 and self.density_planes():
            losses["tv_density"] = w["tv_density"] * 1e-2 * sum(total_variation(self._masked(p)) for p in self.density_planes())
        if w["tv_appearance"] > 0 and self.appearance_planes():
            losses["tv_appearance"] = w["tv_appearance"] * 1e-2 * sum(
                total_variation(self._masked(p)) for p in self.appearance_planes()
            )
        return losses

    def param_groups(self) -> list[dict[str, Any]]:
        """TensoRF's groups: "factors" at 0.02, "network" (basis matrix and decoder) at 1e-3, and
        "codes" (the appearance codes, if any; `fields.appearance.LR_CODES`)."""
        return [
            {"name": "factors", "params": self.factor_parameters(), "lr": LR_FACTORS},
            {"name": "network", "params": list(self.basis.parameters()) + list(self.decoder.parameters()), "lr": LR_NETWORK},
            *self._codes_groups(),
        ]

    @classmethod
    def scene_kwargs(cls, scene: SceneBox, gpu: bool = False, **overrides: Any) -> dict[str, Any]:
        """The preset's arguments; `resolution` defaults to TensoRF's 128^3 voxels over the box."""
        kwargs = super().scene_kwargs(scene, gpu, **overrides)
        kwargs.setdefault("resolution", resolution_for_voxels(INITIAL_VOXELS, scene.aabb.float()))
        return kwargs

    def config(self) -> dict[str, Any]:
        return {
            "aabb": self.aabb.tolist(),
            "resolution": list(self.resolution),
            "density_components": self.density_components,
            "appearance_components": self.appearance_components,
            **self._head_config(),
            **self.rank_config(),
        }

    # --- slimming -----------------------------------------------------------------------
    def _slimmed_state(self, rank: int) -> dict[str, torch.Tensor]:
        """State dict with every factor cut to its first components at `rank`, and the basis
        matrix to the columns of the appearance components kept."""
        factors = {id(p) for p in self.factor_parameters()}
        state = {}
        for name, tensor in self.state_dict(keep_vars=True).items():
            if id(tensor) in factors:
                tensor = tensor[:, : active_components(rank, tensor.shape[1], self.ranks)]
            state[name] = tensor.detach()
        columns, start = [], 0
        for components in self._appearance_groups():
            columns.append(torch.arange(start, start + active_components(rank, components, self.ranks)))
            start += components
        state["basis.weight"] = self.basis.weight.detach()[:, torch.cat(columns)]
        return state

    # --- grid geometry ------------------------------------------------------------------
    @property
    def voxel_size(self) -> torch.Tensor:
        """Spacing of grid points per axis, `[3]`."""
        return (self.aabb[1] - self.aabb[0]) / (torch.tensor(self.resolution, dtype=torch.float32, device=self.aabb.device) - 1)

    @torch.no_grad()
    def upsample(self, resolution: list[int]) -> None:
        """Resample every factor to `resolution [X, Y, Z]` (trilinear on the factors)."""
        self._resample(None, None, [int(r) for r in resolution])
        self.resolution = [int(r) for r in resolution]

    @torch.no_grad()
    def shrink(self, aabb: torch.Tensor) -> None:
        """Crop the factors to the grid-aligned box that covers `aabb [2, 3]`.

        The new box snaps outwards to grid points, so the field is unchanged inside it.
        """
        aabb = aabb.to(self.aabb)
        voxel = self.voxel_size
        lo = torch.floor((aabb[0] - self.aabb[0]) / voxel + 1e-4).long().clamp(min=0)
        hi = torch.ceil((aabb[1] - self.aabb[0]) / voxel - 1e-4).long()
        hi = torch.minimum(hi, torch.tensor(self.resolution, device=hi.device) - 1)
        hi = torch.maximum(hi, lo + 1)
        new_aabb = torch.stack([self.aabb[0] + lo * voxel, self.aabb[0] + hi * voxel])
        new_resolution = (hi - lo + 1).tolist()
        self._resample(lo.tolist(), hi.tolist(), new_resolution)
        self.resolution = new_resolution
        self.aabb.copy_(new_aabb)

