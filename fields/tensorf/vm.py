"""TensoRF vector-matrix (VM) decomposition.

sigma(x) = sum_i sum_r P^i_r(x_{a_i}, x_{b_i}) * v^i_r(x_{c_i}) over the three plane/line pairs
(XY-Z, XZ-Y, YZ-X); appearance = B [P^i_r * v^i_r]_{i,r} followed by the decoder.
"""

from __future__ import annotations

import torch
from torch import nn

from cuda_ext import vm_sample
from cuda_ext.reference import VM_LINE_AXES as LINE_AXES
from cuda_ext.reference import VM_PLANE_AXES as PLANE_AXES

from ..factors import resize_line, resize_plane
from ..slimming import active_components
from .grid import TensorGridField

__all__ = ["VMField", "PLANE_AXES", "LINE_AXES"]


class VMField(TensorGridField):
    """TensoRF-VM. Defaults follow TensoRF's lego config: 16/48 components per pair, MLP decoder."""

    name = "vm"
    #: TensoRF's lego config (16/48 components per pair, MLP with PE 2) and its flower config
    #: for forward-facing scenes (16,4,4 / 48,12,12 components, no PE)
    presets = {
        "bounded": {"density_components": 16, "appearance_components": 48, "decoder": "mlp"},
        "forward_facing": {"density_components": [16, 4, 4], "appearance_components": [48, 12, 12], "decoder": "mlp", "decoder_pe": 0},
    }

    def __init__(
        self,
        aabb: list[list[float]] | torch.Tensor,
        resolution: list[int],
        density_components: list[int] | int = 16,
        appearance_components: list[int] | int = 48,
        init_scale: float = 0.1,
        **kwargs,
    ) -> None:
        self.init_scale = init_scale
        super().__init__(aabb, resolution, _per_pair(density_components), _per_pair(appearance_components), **kwargs)

    def _build_factors(self) -> None:
        def planes(ranks: list[int]) -> nn.ParameterList:
            return nn.ParameterList(
                nn.Parameter(self.init_scale * torch.randn(1, r, self.resolution[b], self.resolution[a]))
                for r, (a, b) in zip(ranks, PLANE_AXES)
            )

        def lines(ranks: list[int]) -> nn.ParameterList:
            return nn.ParameterList(
                nn.Parameter(self.init_scale * torch.randn(1, r, self.resolution[c], 1)) for r, c in zip(ranks, LINE_AXES)
            )

        self.density_plane, self.density_line = planes(self.density_components), lines(self.density_components)
        self.app_plane, self.app_line = planes(self.appearance_components), lines(self.appearance_components)

    def _density_groups(self) -> list[int]:
        return list(self.density_components)

    def _appearance_groups(self) -> list[int]:
        return list(self.appearance_components)

    def _density_feature(self, xn: torch.Tensor) -> torch.Tensor:
        return self._sample(self.density_plane, self.density_line, xn, reduce=True, density=True)

    def _appearance_feature(self, xn: torch.Tensor) -> torch.Tensor:
        return self._sample(self.app_plane, self.app_line, xn, reduce=False, density=False)

    def _sample(
        self, planes: nn.ParameterList, lines: nn.ParameterList, xn: torch.Tensor, reduce: bool, density: bool
    ) -> torch.Tensor:
        """Plane x line products `[sum R_i, N]` at normalized points `xn [N, 3]`, or their sum `[N]`
        (the rank mask scales the lines, so each product is scaled once; `density` says which
        blur applies, see `set_blur`)."""
        planes_seen = [self._blurred(plane, density) for plane in planes]
        lines_seen = [self._masked(self._blurred(line, density)) for line in lines]
        return vm_sample(planes_seen, lines_seen, xn.contiguous(), reduce)

    def _slimmed_config(self, rank: int) -> dict:
        return {
            "density_components": [active_components(rank, c, self.ranks) for c in self.density_components],
            "appearance_components": [active_components(rank, c, self.ranks) for c in self.appearance_components],
        }

    def _resample(self, index_lo: list[int] | None, index_hi: list[int] | None, resolution: list[int]) -> None:
        for planes, lines in ((self.density_plane, self.density_line), (self.app_plane, self.app_line)):
            for i, ((a, b), c) in enumerate(zip(PLANE_AXES, LINE_AXES)):
                plane, line = planes[i].data, lines[i].data
                if index_lo is not None and index_hi is not None:
                    plane = plane[:, :, index_lo[b] : index_hi[b] + 1, index_lo[a] : index_hi[a] + 1]
                    line = line[:, :, index_lo[c] : index_hi[c] + 1]
                planes[i] = nn.Parameter(resize_plane(plane, (resolution[b], resolution[a])))
                lines[i] = nn.Parameter(resize_line(line, resolution[c]))

    def density_factors(self) -> list[nn.Parameter]:
        return [*self.density_plane, *self.density_line]

    def density_planes(self) -> list[nn.Parameter]:
        return list(self.density_plane)

    def appearance_planes(self) -> list[nn.Parameter]:
        return list(self.app_plane)

    def factor_parameters(self) -> list[nn.Parameter]:
        return [*self.density_plane, *self.density_line, *self.app_plane, *self.app_line]

    def config(self) -> dict:
        return {**super().config(), "init_scale": self.init_scale}


def _per_pair(components: list[int] | int) -> list[int]:
    return [int(components)] * 3 if isinstance(components, int) else [int(c) for c in components]
