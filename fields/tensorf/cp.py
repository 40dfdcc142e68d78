"""TensoRF CANDECOMP/PARAFAC (CP) decomposition.

sigma(x) = sum_r v^X_r(x) v^Y_r(y) v^Z_r(z); appearance = B [v^X_r v^Y_r v^Z_r]_r + decoder.
"""

from __future__ import annotations

import torch
from torch import nn

from cuda_ext import cp_sample

from ..factors import resize_line
from ..slimming import active_components
from .grid import TensorGridField

__all__ = ["CPField"]


class CPField(TensorGridField):
    """TensoRF-CP. Defaults follow TensoRF's CP config: 96 density and 288 appearance components."""

    name = "cp"
    #: TensoRF's CP config: 96 density and 288 appearance components, MLP decoder
    presets = {
        "bounded": {"density_components": 96, "appearance_components": 288, "decoder": "mlp"},
        "forward_facing": {"density_components": 96, "appearance_components": 288, "decoder": "mlp"},
    }

    def __init__(
        self,
        aabb: list[list[float]] | torch.Tensor,
        resolution: list[int],
        density_components: int = 96,
        appearance_components: int = 288,
        init_scale: float = 0.2,
        **kwargs,
    ) -> None:
        self.init_scale = init_scale
        super().__init__(aabb, resolution, int(density_components), int(appearance_components), **kwargs)

    def _build_factors(self) -> None:
        def lines(rank: int) -> nn.ParameterList:
            return nn.ParameterList(
                nn.Parameter(self.init_scale * torch.randn(1, rank, self.resolution[axis], 1)) for axis in range(3)
            )

        self.density_line = lines(self.density_components)
        self.app_line = lines(self.appearance_components)

    def _density_groups(self) -> list[int]:
        return [self.density_components]

    def _appearance_groups(self) -> list[int]:
        return [self.appearance_components]

    def _density_feature(self, xn: torch.Tensor) -> torch.Tensor:
        return self._sample(self.density_line, xn, reduce=True, density=True)

    def _appearance_feature(self, xn: torch.Tensor) -> torch.Tensor:
        return self._sample(self.app_line, xn, reduce=False, density=False)

    def _sample(self, lines: nn.ParameterList, xn: torch.Tensor, reduce: bool, density: bool) -> torch.Tensor:
        """Products of the three lines `[R, N]` at normalized points `xn [N, 3]`, or their sum `[N]`
        (the rank mask scales the X line, so each product is scaled once; `density` says which
        blur applies, see `set_blur`)."""
        x, y, z = (self._blurred(line, density) for line in lines)
        return cp_sample([self._masked(x), y, z], xn.contiguous(), reduce)

    def _slimmed_config(self, rank: int) -> dict:
        return {
            "density_components": active_components(rank, self.density_components, self.ranks),
            "appearance_components": active_components(rank, self.appearance_components, self.ranks),
        }

    def _resample(self, index_lo: list[int] | None, index_hi: list[int] | None, resolution: list[int]) -> None:
        for lines in (self.density_line, self.app_line):
            for axis in range(3):
                line = lines[axis].data
                if index_lo is not None and index_hi is not None:
                    line = line[:, :, index_lo[axis] : index_hi[axis] + 1]
                lines[axis] = nn.Parameter(resize_line(line, resolution[axis]))

    def density_factors(self) -> list[nn.Parameter]:
        return list(self.density_line)

    def factor_parameters(self) -> list[nn.Parameter]:
        return [*self.density_line, *self.app_line]

    def config(self) -> dict:
        return {**super().config(), "init_scale": self.init_scale}
