"""The lookup grid of a Gaussian field: for each cell, the Gaussians whose cutoff ellipsoid's
bounding box touches it, in CSR layout (`cell_start [C + 1]`, `cell_gaussians [L]`), so that a
sample visits only the few Gaussians near it (`cuda_ext.gaussian_mix`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["CellGrid", "CellLists", "cell_grid", "build_cell_lists", "box_occupancy", "lists_for", "MAX_HALF_SPAN", "MAX_CELLS_PER_AXIS", "SLACK"]

#: a Gaussian is listed in at most this many cells either side of its centre's cell per axis
#: (its tails beyond are cut: densification prunes Gaussians that large long before)
MAX_HALF_SPAN = 8
#: the lookup grid's cells per axis at most (128^3 cells: 16 MB of offsets)
MAX_CELLS_PER_AXIS = 128
#: lists are built for boxes this many cells wider, so they stay valid while the Gaussians move
#: less than that (`CellLists.covers`); training rebuilds them only then
SLACK = 0.25


@dataclass(frozen=True)
class CellGrid:
    """Cubic cells covering a box: cell (i, j, l) spans origin + [i, i + 1) * cell_size along x, ..."""

    origin: tuple[float, float, float]
    cell_size: float
    resolution: tuple[int, int, int]

    @property
    def num_cells(self) -> int:
        return math.prod(self.resolution)


@dataclass
class CellLists:
    """Gaussian indices per cell of `grid`: cell c lists `gaussians[start[c]:start[c + 1]]`
    (ascending). `start [C + 1]` int64, `gaussians [L]` int32; built for the boxes
    `means +- half_extents` (both `[N, 3]`)."""

    grid: CellGrid
    start: torch.Tensor
    gaussians: torch.Tensor
    means: torch.Tensor
    half_extents: torch.Tensor

    @torch.no_grad()
    def covers(self, means: torch.Tensor, half_extents: torch.Tensor) -> bool:
        """Whether every box `means +- half_extents` lies inside the box it was listed for."""
        if means.shape != self.means.shape or means.device != self.means.device:
            return False
        return bool(((means - self.means).abs() + half_extents <= self.half_extents).all())


def cell_grid(aabb: torch.Tensor, resolution: list[int]) -> CellGrid:
    """Cubic cells over `aabb [2, 3]`, as many per axis as `resolution` asks for along the axis
    that needs the largest cells (the others get as many as fit, rounded up)."""
    size = (aabb[1] - aabb[0]).double()
    cell_size = float((size / torch.tensor(resolution, dtype=torch.float64)).max())
    counts = tuple(max(1, math.ceil(s / cell_size - 1e-9)) for s in size.tolist())
    return CellGrid(tuple(float(v) for v in aabb[0].tolist()), cell_size, counts)  # type: ignore[arg-type]


@torch.no_grad()
def build_cell_lists(means: torch.Tensor, half_extents: torch.Tensor, grid: CellGrid) -> CellLists:
    """List every Gaussian in the cells its box `means +- half_extents` touches.

    Args:
        means: `[N, 3]`; half_extents: `[N, 3]` (the cutoff ellipsoid's half box per axis).
    Returns:
        the lists; a Gaussian entirely outside the grid is in none.
    """
    device = means.device
    res = torch.tensor(grid.resolution, device=device)
    origin = torch.tensor(grid.origin, dtype=means.dtype, device=device)
    centre = torch.floor((means - origin) / grid.cell_size).long()
    lo = torch.floor((means - half_extents - origin) / grid.cell_size).long()
    hi = torch.floor((means + half_extents - origin) / grid.cell_size).long()
    lo, hi = torch.maximum(lo, centre - MAX_HALF_SPAN), torch.minimum(hi, centre + MAX_HALF_SPAN)
    visible = ((hi >= 0) & (lo < res)).all(dim=-1) & torch.isfinite(means).all(dim=-1)
    lo, hi = lo.clamp(min=0), torch.minimum(hi, res - 1)
    span = torch.where(visible[:, None], hi - lo + 1, torch.zeros_like(lo))
    counts = span.prod(dim=-1)
    gaussian = torch.repeat_interleave(torch.arange(means.shape[0], device=device), counts)
    k = torch.arange(gaussian.shape[0], device=device) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
    sy, sz = span[gaussian, 1], span[gaussian, 2]
    cell = lo[gaussian] + torch.stack([k // (sy * sz), (k // sz) % sy, k % sz], dim=-1)
    row = ((cell[:, 0] * res[1] + cell[:, 1]) * res[2] + cell[:, 2]).int()  # at most 128^3 cells: int32 sorts faster
    row, order = torch.sort(row, stable=True)
    start = torch.zeros(grid.num_cells + 1, dtype=torch.int64, device=device)
    start[1:] = torch.bincount(row.long(), minlength=grid.num_cells).cumsum(0)
    return CellLists(grid, start, gaussian[order].int(), means, half_extents)


@torch.no_grad()
def box_occupancy(means: torch.Tensor, half_extents: torch.Tensor, aabb: torch.Tensor, resolution: list[int]) -> torch.Tensor:
    """`[X, Y, Z]` bool: the cells of a grid of `resolution` over `aabb [2, 3]` that some box
    `means +- half_extents` (`[N, 3]` each) touches. Each box adds +-1 at the eight corners of
    its cell range in a difference array whose running sums along the three axes count the
    boxes over each cell: O(N + cells) however large the boxes."""
    res = torch.tensor(list(resolution), device=means.device)
    cell_size = (aabb[1] - aabb[0]) / res
    lo = torch.floor((means - half_extents - aabb[0]) / cell_size).long()
    hi = torch.floor((means + half_extents - aabb[0]) / cell_size).long()
    touches = ((hi >= 0) & (lo < res)).all(dim=-1) & torch.isfinite(means).all(dim=-1) & torch.isfinite(half_extents).all(dim=-1)
    lo, hi = lo[touches].clamp(min=0), torch.minimum(hi[touches], res - 1) + 1
    counts = torch.zeros([r + 1 for r in resolution], dtype=torch.int32, device=means.device)
    ones = torch.ones(lo.shape[0], dtype=torch.int32, device=means.device)
    for corner in range(8):
        pick = [(corner >> axis) & 1 for axis in range(3)]
        index = [torch.where(torch.tensor(bool(p)), hi[:, axis], lo[:, axis]) for axis, p in enumerate(pick)]
        counts.index_put_(tuple(index), ones if sum(pick) % 2 == 0 else -ones, accumulate=True)
    return counts.cumsum(0).cumsum(1).cumsum(2)[: resolution[0], : resolution[1], : resolution[2]] > 0


@torch.no_grad()
def lists_for(means: torch.Tensor, half_extents: torch.Tensor, aabb: torch.Tensor, min_cell: float) -> CellLists:
    """Lists over `aabb [2, 3]` with cells half as large as the median Gaussian's half box h,
    at least `min_cell` and at most `MAX_CELLS_PER_AXIS` per axis; every box widened by `SLACK`
    cells (see `CellLists.covers`). A sample in a cell of side c visits the Gaussians whose
    centres lie within c + 2h of it, (c + 2h)^3 / (2h)^3 times those that reach it: 2x at
    c = h / 2, for about 125 list entries per Gaussian (3.4x and 27 entries at c = h)."""
    size = (aabb[1] - aabb[0]).double()
    typical = 0.5 * float(half_extents.max(dim=-1).values.median()) if means.shape[0] else min_cell
    cell = max(typical, min_cell, float(size.max()) / MAX_CELLS_PER_AXIS)
    grid = cell_grid(aabb, [max(1, math.ceil(float(s) / cell - 1e-9)) for s in size])
    return build_cell_lists(means, half_extents + SLACK * grid.cell_size, grid)
