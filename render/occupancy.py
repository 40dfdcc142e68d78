"""Occupancy grid: a binary grid over the field's box that marks where density is worth sampling.

TensoRF's alpha mask generalised as in instant-ngp/nerfacc: a running (decaying) maximum of the
density per cell, thresholded by the opacity one render step would have there.
"""

from __future__ import annotations

from typing import Callable

import math

import torch
from torch import nn

from cuda_ext import update_occupancy
from fields.base import SelfOccupying

from .contraction import contracted_stretch


__all__ = ["OccupancyGrid"]


class OccupancyGrid(nn.Module):
    """Binary occupancy over `aabb [2, 3]` at `resolution` cells per axis.

    Buffers: `aabb [2, 3]`, `density_ema [X*Y*Z]`, `occupied [X, Y, Z]` bool (all True at start).
    """

    def __init__(self, aabb: torch.Tensor, resolution: int | list[int] = 128) -> None:
        super().__init__()
        res = [resolution] * 3 if isinstance(resolution, int) else list(resolution)
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3).clone())
        self.register_buffer("density_ema", torch.zeros(math.prod(res)))
        self.register_buffer("occupied", torch.ones(res, dtype=torch.bool))

    @property
    def resolution(self) -> list[int]:
        return list(self.occupied.shape)

    def host_aabb(self) -> torch.Tensor:
        """A CPU copy of `aabb` (read-only), for the ops that take the box by value. It is made
        once per box, not per batch (from a GPU each copy is a device sync), and again when the
        buffer is replaced or changed in place (`copy_`, `load_state_dict`): it is keyed on the
        buffer object and its version counter."""
        aabb = self.aabb
        if aabb.is_inference():  # no version counter to key a copy on
            return aabb.cpu()
        cached = getattr(self, "_host_aabb", None)
        if cached is None or cached[0] is not aabb or cached[1] != aabb._version:
            cached = (aabb, aabb._version, aabb.detach().to("cpu", copy=True))
            self._host_aabb = cached
        return cached[2]

    def cell_centers(self, cells: torch.Tensor, jitter: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        """World positions `[M, 3]` in flat cells `[M]`: centres, or uniform in the cell with jitter."""
        x_res, y_res, z_res = self.resolution
        ijk = torch.stack([cells // (y_res * z_res), (cells // z_res) % y_res, cells % z_res], dim=-1).float()
        offset = torch.rand(ijk.shape, generator=generator, device=ijk.device) if jitter else torch.full_like(ijk, 0.5)
        size = torch.tensor(self.resolution, dtype=torch.float32, device=ijk.device)
        return self.aabb[0] + (ijk + offset) / size * (self.aabb[1] - self.aabb[0])

    @torch.no_grad()
    def take_from(self, field: SelfOccupying, step_size: float, threshold: float) -> None:
        """Set every cell from a `SelfOccupying` field's own account of where it is not empty
        (a step of `step_size` there stopping more than `threshold` of the light), in place of
        `update`'s sampling of the density."""
        self.occupied.copy_(field.occupied_cells(self.aabb, self.resolution, step_size, threshold))

    @torch.no_grad()
    def update(
        self,
        density_fn: Callable[[torch.Tensor], torch.Tensor],
        step_size: float,
        alpha_threshold: float = 1e-3,
        decay: float = 0.8,
        fraction: float = 1.0,
        chunk: int = 1 << 18,
        generator: torch.Generator | None = None,
        contracted: bool = False,
    ) -> None:
        """Re-evaluate density in (a `fraction` of) the cells at jittered points.

        A partial update takes every (1 / fraction)-th cell from a random offset (a random
        permutation of millions of cells would cost more than the update it selects for).

        A cell is occupied when a render step of `step_size` there would have opacity above
        `alpha_threshold`, i.e. density_ema > -log(1 - alpha_threshold) / step_size, or, while
        the field is still faint everywhere (early in training), when its density is above the
        grid's mean (as nerfacc does), which keeps the cells that the images ask to fill.
        A `contracted` grid spans contracted space, where a march step is longer than
        `step_size` by up to `contracted_stretch`: a cell far out is occupied by a density that
        much fainter (the faint-field rule compares the densities as they are).
        """
        num_cells = self.density_ema.numel()
        device = self.density_ema.device
        if fraction >= 1.0:
            cells = torch.arange(num_cells, device=device)
        else:
            stride = max(1, round(1.0 / fraction))
            offset = int(torch.randint(stride, (1,), generator=generator, device=device if generator is None else generator.device))
            cells = torch.arange(offset, num_cells, stride, device=device)
        densities = torch.cat(
            [density_fn(self.cell_centers(part, jitter=True, generator=generator)) for part in cells.split(chunk)]
        )
        update_occupancy(self.density_ema, cells, densities, decay)
        opaque = -math.log(1.0 - alpha_threshold) / step_size
        faint = self.density_ema.mean().item()
        if contracted:
            stretch = contracted_stretch(self.cell_centers(torch.arange(num_cells, device=device), jitter=False))
            threshold = torch.clamp(opaque / stretch, max=faint)
        else:
            threshold = min(opaque, faint)
        self.occupied.copy_((self.density_ema > threshold).view(self.resolution))

    @torch.no_grad()
    def inherit(self, previous: "OccupancyGrid") -> None:
        """Start the running density from `previous`'s (the cell of `previous` holding each cell
        centre; 0 outside its box), e.g. when the box shrinks, so a field whose density is still
        faint somewhere keeps the cells an earlier update found occupied. `occupied` follows at
        the next `update`."""
        flat, inside = self._cells_in(previous)
        self.density_ema.copy_(torch.where(inside, previous.density_ema[flat], torch.zeros_like(self.density_ema)))

    @torch.no_grad()
    def adopt(self, previous: "OccupancyGrid") -> None:
        """Become `previous` resampled to this box and resolution: its running density
        (`inherit`) and its occupied cells (a cell is occupied when the cell of `previous` holding
        its centre is), e.g. a distilled student's grid from its teacher's."""
        self.inherit(previous)
        flat, inside = self._cells_in(previous)
        self.occupied.copy_((inside & previous.occupied.flatten()[flat]).view(self.occupied.shape))

    def _cells_in(self, previous: "OccupancyGrid") -> tuple[torch.Tensor, torch.Tensor]:
        """For each of this grid's cells, the flat index `[C]` of the cell of `previous` holding its
        centre (clamped to the box), and whether the centre is inside `previous`'s box `[C]`."""
        centers = self.cell_centers(torch.arange(self.density_ema.numel(), device=self.density_ema.device), jitter=False)
        size = torch.tensor(previous.resolution, device=centers.device)
        ijk = torch.floor((centers - previous.aabb[0]) / (previous.aabb[1] - previous.aabb[0]) * size).long()
        inside = ((ijk >= 0) & (ijk < size)).all(dim=-1)
        ijk = torch.minimum(ijk.clamp(min=0), size - 1)
        return (ijk[:, 0] * size[1] + ijk[:, 1]) * size[2] + ijk[:, 2], inside

    @torch.no_grad()
    def fade(self, step_size: float, alpha_threshold: float, updates: int, decay: float = 0.8) -> None:
        """Cap the running density so that every cell's value drops below the occupancy threshold
        after `updates` updates of that cell without new density (values of a field that has
        been replaced fade instead of lasting for their own, often much larger, time)."""
        threshold = -math.log(1.0 - alpha_threshold) / step_size
        self.density_ema.clamp_(max=threshold / decay**updates)

    def occupied_box(self, margin: int = 1) -> torch.Tensor | None:
        """World box `[2, 3]` covering the occupied cells plus `margin` cells on each side (as
        TensoRF dilates its alpha mask; a jittered update can miss a barely-clipped cell),
        clipped to the grid; None when nothing is occupied."""
        ijk = self.occupied.nonzero()
        if ijk.shape[0] == 0:
            return None
        size = torch.tensor(self.resolution, dtype=torch.float32, device=ijk.device)
        extent = self.aabb[1] - self.aabb[0]
        lo = self.aabb[0] + (ijk.amin(0).float() - margin).clamp(min=0) / size * extent
        hi = self.aabb[0] + torch.minimum(ijk.amax(0).float() + 1.0 + margin, size) / size * extent
        return torch.stack([lo, hi])

    def occupancy_fraction(self) -> float:
        return self.occupied.float().mean().item()
