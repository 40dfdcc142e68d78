"""Where Strivec's local tensors go, and the lookup tables that find the ones covering a point.

Placement lattice: for a box and a spacing, cubic cells of side `spacing`, ceil(extent / spacing)
per axis, tile the box, centred on it; a tensor may sit at the centre of each lattice cell.
Occupancy grids are `[X, Y, Z]` bool over a box `[2, 3]` (cell (i, j, l) spans
min + [i, i + 1] * cell size along x, and so on, as `render.OccupancyGrid`); an occupancy cell
lies in a lattice cell or a tensor's cube when its centre does.

Lookup table of one scale: a regular grid of cubic cells from the field box's lower corner; row
(i * Y + j) * Z + l lists the tensors whose cube meets cell (i, j, l) (with a small margin, so
that rounding never hides a covering tensor), ascending, padded with -1 to the widest row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "LookupGrid",
    "lookup_grid",
    "build_table",
    "lattice_centers",
    "place_centers",
    "occupied_counts",
    "cubes_meet_box",
    "nearest_to_occupied",
]

#: lookup cells per axis at most (cells are the half-size, or longer in a large box)
MAX_LOOKUP_CELLS = 256
#: cells a cube's range is widened by on each side when it is listed in the table
TABLE_MARGIN = 1e-3
#: entries of a lookup table at most (cells x widest row; 1 GiB of int32): Strivec's placement
#: lists a few dozen tensors per cell, while centres crowded on one spot (a damaged checkpoint)
#: would list all of them in every cell there
MAX_TABLE_ENTRIES = 1 << 28


@dataclass(frozen=True)
class LookupGrid:
    """A regular grid of cubic cells: lower corner, cell side, cells per axis."""

    origin: tuple[float, float, float]
    cell_size: float
    resolution: tuple[int, int, int]


def lookup_grid(aabb: torch.Tensor, half_size: float) -> LookupGrid:
    """The lookup grid of a scale over `aabb [2, 3]`: cells of side `half_size` (longer where the box
    would need more than `MAX_LOOKUP_CELLS` per axis), enough of them to hold the closed box."""
    size = (aabb[1] - aabb[0]).double()
    cell = max(float(half_size), float(size.max()) / MAX_LOOKUP_CELLS)
    resolution = tuple(math.floor(s / cell) + 1 for s in size.tolist())
    return LookupGrid(tuple(aabb[0].double().tolist()), cell, resolution)


def build_table(centers: torch.Tensor, half_size: float, grid: LookupGrid) -> torch.Tensor:
    """Per cell of `grid`, the tensors (`centers [T, 3]`, cubes of `half_size`) whose cube meets it.

    Centres that are not finite (placeholders of a field not loaded yet) are listed nowhere.
    Raises `ValueError` when the table would exceed `MAX_TABLE_ENTRIES` (crowded centres).
    Returns:
        `[C, M]` int32 on the centres' device, C = prod(grid.resolution), M >= 1 the widest row.
    """
    device = centers.device
    origin = torch.tensor(grid.origin, dtype=torch.float64, device=device)
    resolution = torch.tensor(grid.resolution, device=device)
    num_cells = math.prod(grid.resolution)
    c = centers.detach().double()
    finite = torch.isfinite(c).all(dim=-1)
    c = torch.where(finite[:, None], c, origin)  # any finite value: these rows are dropped below
    lo = torch.floor((c - half_size - origin) / grid.cell_size - TABLE_MARGIN).long()
    hi = torch.floor((c + half_size - origin) / grid.cell_size + TABLE_MARGIN).long()
    listed = finite & ((hi >= 0) & (lo < resolution)).all(dim=-1)
    lo, hi = lo.clamp(min=0), torch.minimum(hi, resolution - 1)
    span = (hi - lo + 1).clamp(min=0)
    width = int(span.max()) if span.numel() else 0
    steps = torch.arange(width, device=device)
    offsets = torch.stack(torch.meshgrid(steps, steps, steps, indexing="ij"), dim=-1).reshape(-1, 3)  # [W^3, 3]
    pairs = listed[:, None] & (offsets[None] < span[:, None]).all(dim=-1)  # [T, W^3]
    cells = (lo[:, None] + offsets[None])[pairs]
    tensors = torch.arange(centers.shape[0], device=device)[:, None].expand_as(pairs)[pairs]
    flat, order = torch.sort((cells[:, 0] * resolution[1] + cells[:, 1]) * resolution[2] + cells[:, 2], stable=True)
    tensors = tensors[order]  # ascending within each cell: pairs came tensor by tensor
    counts = torch.bincount(flat, minlength=num_cells)
    slot = torch.arange(flat.shape[0], device=device) - (torch.cumsum(counts, 0) - counts)[flat]
    widest = max(1, int(counts.max()) if flat.numel() else 1)
    if num_cells * widest > MAX_TABLE_ENTRIES:
        raise ValueError(
            f"the tri-vector lookup table would hold {num_cells:,} cells x {widest:,} tensors (one cell meets {widest:,} "
            f"of {centers.shape[0]:,} cubes), more than {MAX_TABLE_ENTRIES:,} entries: the tensor centres are crowded on one spot"
        )
    table = torch.full((num_cells, widest), -1, dtype=torch.int32, device=device)
    table[flat, slot] = tensors.int()
    return table


def _lattice(box: torch.Tensor, spacing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower corner `[3]` (float64) and cells per axis `[3]` of the placement lattice over `box [2, 3]`."""
    size = (box[1] - box[0]).double()
    shape = torch.ceil(size / spacing - 1e-6).long().clamp(min=1)
    origin = (box[0].double() + box[1].double()) / 2 - shape * spacing / 2
    return origin, shape


def _lattice_points(origin: torch.Tensor, shape: torch.Tensor, spacing: float, flat: torch.Tensor) -> torch.Tensor:
    """Centres `[P, 3]` float32 of the lattice cells with flat (x-major) indices `flat [P]`."""
    ijk = torch.stack([flat // (shape[1] * shape[2]), (flat // shape[2]) % shape[1], flat % shape[2]], dim=-1)
    return (origin + (ijk + 0.5) * spacing).float()


def lattice_centers(box: torch.Tensor, spacing: float) -> torch.Tensor:
    """Every centre `[T, 3]` of the placement lattice over `box [2, 3]` (x-major order)."""
    origin, shape = _lattice(box, spacing)
    return _lattice_points(origin, shape, spacing, torch.arange(int(shape.prod()), device=box.device))


def _occupied_cell_centers(occupied: torch.Tensor, grid_aabb: torch.Tensor) -> torch.Tensor:
    """World centres `[P, 3]` (float64) of the occupied cells of `occupied [X, Y, Z]` over `grid_aabb`."""
    box = grid_aabb.to(occupied.device).double()
    size = torch.tensor(occupied.shape, dtype=torch.float64, device=occupied.device)
    return box[0] + (occupied.nonzero().double() + 0.5) / size * (box[1] - box[0])


def place_centers(occupied: torch.Tensor, grid_aabb: torch.Tensor, spacing: float) -> torch.Tensor:
    """Centres `[T, 3]` of the placement lattice over `grid_aabb [2, 3]` whose lattice cell holds at
    least one occupied cell of `occupied [X, Y, Z]` (x-major order; none for an empty grid)."""
    points = _occupied_cell_centers(occupied, grid_aabb)
    origin, shape = _lattice(grid_aabb.to(points.device), spacing)
    ijk = torch.minimum(torch.floor((points - origin) / spacing).long().clamp(min=0), shape - 1)
    flat = torch.unique((ijk[:, 0] * shape[1] + ijk[:, 1]) * shape[2] + ijk[:, 2])
    return _lattice_points(origin, shape, spacing, flat)


def occupied_counts(centers: torch.Tensor, half_size: float, occupied: torch.Tensor, grid_aabb: torch.Tensor) -> torch.Tensor:
    """Occupied cells of `occupied [X, Y, Z]` over `grid_aabb [2, 3]` inside each cube
    (`centers [T, 3]`, `half_size`): `[T]` int64, by a summed-volume table (O(1) per cube)."""
    device = occupied.device
    box = grid_aabb.to(device).double()
    resolution = torch.tensor(occupied.shape, device=device)
    cell = (box[1] - box[0]) / resolution
    c = centers.to(device).double()
    # cells whose centre min + (i + 0.5) * cell lies in [c - h, c + h]: i in [lo, hi)
    lo = torch.minimum(torch.ceil((c - half_size - box[0]) / cell - 0.5).long().clamp(min=0), resolution)
    hi = torch.minimum((torch.floor((c + half_size - box[0]) / cell - 0.5).long() + 1).clamp(min=0), resolution)
    hi = torch.maximum(hi, lo)
    volume = torch.zeros([s + 1 for s in occupied.shape], dtype=torch.int64, device=device)
    volume[1:, 1:, 1:] = occupied.long().cumsum(0).cumsum(1).cumsum(2)
    count = torch.zeros(c.shape[0], dtype=torch.int64, device=device)
    for corner in range(8):
        pick = [(hi if corner >> a & 1 else lo)[:, a] for a in range(3)]
        sign = 1 if corner.bit_count() % 2 == 1 else -1  # (-1)^(lower bounds picked)
        count += sign * volume[pick[0], pick[1], pick[2]]
    return count


def cubes_meet_box(centers: torch.Tensor, half_size: float, box: torch.Tensor) -> torch.Tensor:
    """Whether each cube (`centers [T, 3]`, `half_size`) meets the closed `box [2, 3]`: `[T]` bool."""
    return ((centers - half_size <= box[1]) & (centers + half_size >= box[0])).all(dim=-1)


def nearest_to_occupied(centers: torch.Tensor, occupied: torch.Tensor, grid_aabb: torch.Tensor) -> int:
    """Index of the centre (`centers [T, 3]`, T >= 1) nearest (max-norm) to the box around the
    occupied cells' centres of `occupied [X, Y, Z]` over `grid_aabb` (at least one occupied)."""
    points = _occupied_cell_centers(occupied, grid_aabb)
    c = centers.to(points.device).double()
    gap = torch.maximum(points.amin(dim=0) - c, c - points.amax(dim=0)).clamp(min=0)
    return int(gap.amax(dim=-1).argmin())
