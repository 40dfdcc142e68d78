"""Pure-torch reference implementations of the ray-marching, compositing and factor-sampling ops.

These are the ground truth for the native kernels and the fallback when they are unavailable.
Everything is vectorized over rays and samples (no Python loops), and works on any device.

Packed layout (as nerfacc): samples of all rays are concatenated, sorted by ray;
`ray_indices [S]` names each sample's ray, `packed_info [R, 2]` holds (first sample, count).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "ray_aabb_intersect",
    "contract",
    "contraction_stretch",
    "march_rays",
    "packed_info_from_counts",
    "render_transmittance",
    "composite",
    "update_occupancy",
    "sample_plane",
    "sample_line",
    "VM_PLANE_AXES",
    "VM_LINE_AXES",
    "vm_sample",
    "cp_sample",
    "trivec_neighbors",
    "trivec_sample",
    "grid_rows",
    "gaussian_mix",
    "HASH_PRIMES",
    "hash_level_resolutions",
    "hash_encode",
]

VM_PLANE_AXES = ((0, 1), (0, 2), (1, 2))  # (W axis, H axis) of each VM plane
VM_LINE_AXES = (2, 1, 0)  # the axis of the line paired with each VM plane


def ray_aabb_intersect(
    rays_o: torch.Tensor, rays_d: torch.Tensor, aabb: torch.Tensor, near: float = 0.0, far: float = float("inf")
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab test of rays against a box, clipped to [near, far].

    Args:
        rays_o: origins `[R, 3]`.
        rays_d: directions `[R, 3]` (any length; t is in units of |d|).
        aabb: `[2, 3]` (min, max).
    Returns:
        t_min `[R]`, t_max `[R]`, hit `[R]` bool (t_max > t_min after clipping).
    """
    inv_d = 1.0 / torch.where(rays_d.abs() < 1e-12, torch.full_like(rays_d, 1e-12), rays_d)
    t0 = (aabb[0] - rays_o) * inv_d
    t1 = (aabb[1] - rays_o) * inv_d
    t_min = torch.minimum(t0, t1).amax(dim=-1).clamp(min=near)
    t_max = torch.maximum(t0, t1).amin(dim=-1).clamp(max=far)
    return t_min, t_max, t_max > t_min


def _sqrt(values: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square root (as C++'s sqrtf; torch's vectorized float32 sqrt is off by
    an ulp for about 0.6% of inputs, and marching accumulates such differences): computed in
    float64 and rounded once."""
    return torch.sqrt(values.double()).to(values.dtype) if values.dtype == torch.float32 else torch.sqrt(values)


def contract(points: torch.Tensor) -> torch.Tensor:
    """mip-NeRF 360's scene contraction of `points [..., 3]`: the unit ball stays as it is, a point
    at |x| > 1 goes to (2 - 1 / |x|) x / |x|, so all of space fits in the ball of radius 2 (the
    unit sphere maps to itself, infinity to the sphere of radius 2). Differentiable."""
    squared = (points * points).sum(-1, keepdim=True)
    radius = _sqrt(squared.clamp(min=1.0))  # 1 inside the ball: no division by 0, a gradient of 0
    return torch.where(squared <= 1.0, points, points * ((2.0 - 1.0 / radius) / radius))


def contraction_stretch(points: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """How much longer a ray step from `points [..., 3]` (uncontracted) along unit `directions
    [..., 3]` is than the step it makes in contracted space (1 / |J d|, J the Jacobian of
    `contract`), `[...]`: 1 inside the unit ball; outside, |x|^2 / sqrt(cos^2 + sin^2 (2|x| - 1)^2)
    with cos between x and d (|x|^2 going straight out, about |x| / 2 going across)."""
    squared = (points * points).sum(-1)
    radius = _sqrt(squared.clamp(min=1.0))
    cos_angle = (points * directions).sum(-1) / radius
    sin2 = torch.clamp(1.0 - cos_angle * cos_angle, min=0.0)
    across = 2.0 * radius - 1.0
    stretch = squared / _sqrt(cos_angle * cos_angle + sin2 * across * across)
    return torch.where(squared <= 1.0, torch.ones_like(squared), stretch)


def packed_info_from_counts(counts: torch.Tensor) -> torch.Tensor:
    """(first sample, count) per ray `[R, 2]` int64 from per-ray sample counts `[R]`."""
    counts = counts.long()
    starts = torch.cumsum(counts, 0) - counts
    return torch.stack([starts, counts], dim=-1)


def march_rays(
    rays_o: torch.Tensor,
    rays_d: torch.Tensor,
    t_min: torch.Tensor,
    t_max: torch.Tensor,
    occupied: torch.Tensor,
    aabb: torch.Tensor,
    step_size: float,
    jitter: torch.Tensor | None = None,
    cone_angle: float = 0.0,
    max_step: float = float("inf"),
    contracted: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Samples along each ray, kept only where their midpoint is in an occupied cell.

    Fixed step (cone_angle 0): sample k of ray r spans [t_min + (k + j_r) * step, t_min + (k + 1 + j_r) * step]
    with j_r = jitter[r] in [0, 1) (0 without jitter). Cone stepping (cone_angle > 0, as
    instant-ngp): a step starting at t is clamp(t * cone_angle, step_size, max_step) long, and the
    first starts at t_min + j_r times its length. Samples whose midpoint passes t_max are dropped.
    Contracted (unbounded scenes): the grid spans contracted space (`contract`), a sample's cell is
    that of its contracted midpoint, and every step (fixed or cone) is stretched by
    `contraction_stretch` at its start, so steps stay about step_size long in contracted space
    (and a ray reaches infinity in a few hundred steps).

    Args:
        rays_o, rays_d: `[R, 3]`, unit directions.
        t_min, t_max: `[R]` segment of each ray inside `aabb` (t_max <= t_min: no samples).
        occupied: `[X, Y, Z]` bool occupancy grid spanning `aabb`.
        aabb: `[2, 3]`.
        step_size: distance between samples (the shortest step with cone stepping).
        jitter: optional `[R]` offsets in [0, 1).
        cone_angle, max_step: cone stepping (0: fixed steps).
        contracted: `aabb` and `occupied` are in contracted space.
    Returns:
        ray_indices `[S]` int64, t_starts `[S]`, t_ends `[S]`, packed_info `[R, 2]` int64.
    """
    if cone_angle > 0 or contracted:
        return _march_steps(rays_o, rays_d, t_min, t_max, occupied, aabb, step_size, jitter, cone_angle, max_step, contracted)
    num_rays = rays_o.shape[0]
    span = (t_max - t_min).clamp(min=0.0)
    counts = torch.ceil(span / step_size).long()
    candidate_rays = torch.repeat_interleave(torch.arange(num_rays, device=rays_o.device), counts)
    first = torch.cumsum(counts, 0) - counts
    k = torch.arange(candidate_rays.shape[0], device=rays_o.device) - first[candidate_rays]
    offset = k.to(rays_o.dtype)
    if jitter is not None:
        offset = offset + jitter[candidate_rays]
    t_starts = t_min[candidate_rays] + offset * step_size
    t_mid = t_starts + 0.5 * step_size
    keep = t_mid < t_max[candidate_rays]
    points = rays_o[candidate_rays] + rays_d[candidate_rays] * t_mid[:, None]
    keep &= _occupied_at(points, occupied, aabb)
    ray_indices = candidate_rays[keep]
    t_starts = t_starts[keep]
    kept_counts = torch.bincount(ray_indices, minlength=num_rays)
    return ray_indices, t_starts, t_starts + step_size, packed_info_from_counts(kept_counts)


def _march_steps(
    rays_o: torch.Tensor,
    rays_d: torch.Tensor,
    t_min: torch.Tensor,
    t_max: torch.Tensor,
    occupied: torch.Tensor,
    aabb: torch.Tensor,
    step_size: float,
    jitter: torch.Tensor | None,
    cone_angle: float,
    max_step: float,
    contracted: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cone stepping and contracted marching for `march_rays`: one step of every unfinished ray
    per loop iteration."""

    def step_at(rays: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        dt = torch.clamp(torch.clamp(t * cone_angle, min=step_size), max=max_step)
        if contracted:
            dt = dt * contraction_stretch(rays_o[rays] + rays_d[rays] * t[:, None], rays_d[rays])
        return dt

    everything = torch.arange(rays_o.shape[0], device=rays_o.device)
    t = t_min + (jitter * step_at(everything, t_min) if jitter is not None else torch.zeros_like(t_min))
    active = everything
    rays, starts, ends = [], [], []
    while active.numel() > 0:
        t_start = t[active]
        dt = step_at(active, t_start)
        t_mid = t_start + 0.5 * dt
        going = t_mid < t_max[active]
        active, t_start, dt, t_mid = active[going], t_start[going], dt[going], t_mid[going]
        midpoints = rays_o[active] + rays_d[active] * t_mid[:, None]
        occupied_here = _occupied_at(contract(midpoints) if contracted else midpoints, occupied, aabb)
        rays.append(active[occupied_here])
        starts.append(t_start[occupied_here])
        ends.append((t_start + dt)[occupied_here])
        t[active] = t_start + dt
    ray_indices = torch.cat(rays) if rays else active
    order = torch.sort(ray_indices, stable=True).indices
    t_starts = torch.cat(starts)[order] if starts else t_min[:0]
    t_ends = torch.cat(ends)[order] if ends else t_min[:0]
    ray_indices = ray_indices[order]
    return ray_indices, t_starts, t_ends, packed_info_from_counts(torch.bincount(ray_indices, minlength=rays_o.shape[0]))


def _occupied_at(points: torch.Tensor, occupied: torch.Tensor, aabb: torch.Tensor) -> torch.Tensor:
    """Whether each point `[P, 3]` lies in an occupied cell of `occupied [X, Y, Z]` over `aabb`."""
    resolution = torch.tensor(occupied.shape, device=points.device)
    cell = ((points - aabb[0]) / (aabb[1] - aabb[0]) * resolution).floor().long()
    inside = ((cell >= 0) & (cell < resolution)).all(dim=-1)
    cell = torch.minimum(cell.clamp(min=0), resolution - 1)
    flat = (cell[:, 0] * resolution[1] + cell[:, 1]) * resolution[2] + cell[:, 2]
    return inside & occupied.reshape(-1)[flat]


def render_transmittance(
    sigmas: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor, packed_info: torch.Tensor, ray_indices: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Transmittance before each sample and its alpha.

    T_i = exp(-sum_{j<i} sigma_j delta_j) within the sample's ray, alpha_i = 1 - exp(-sigma_i delta_i).

    Args:
        sigmas, t_starts, t_ends: `[S]`.
        packed_info: `[R, 2]`; ray_indices: `[S]`.
    Returns:
        transmittance `[S]`, alphas `[S]`.
    """
    optical = sigmas * (t_ends - t_starts)
    inclusive = torch.cumsum(optical.double(), 0)
    exclusive = inclusive - optical.double()
    starts, counts = packed_info[:, 0], packed_info[:, 1]
    ray_base = torch.zeros(packed_info.shape[0], dtype=torch.float64, device=sigmas.device)
    nonempty = counts > 0
    ray_base[nonempty] = exclusive[starts[nonempty]]
    transmittance = torch.exp(-(exclusive - ray_base[ray_indices]).to(sigmas.dtype))
    alphas = 1.0 - torch.exp(-optical)
    return transmittance, alphas


def composite(
    sigmas: torch.Tensor,
    rgbs: torch.Tensor,
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    ray_indices: torch.Tensor,
    packed_info: torch.Tensor,
    stop_eps: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Volume rendering of packed samples (differentiable through torch autograd).

    w_i = T_i alpha_i; C = sum_i w_i c_i; opacity = sum_i w_i; depth = sum_i w_i (t0_i + t1_i) / 2.
    Early ray termination: samples whose transmittance T_i is below `stop_eps` get weight 0.

    Args:
        sigmas: `[S]`; rgbs: `[S, 3]`; t_starts, t_ends: `[S]`; ray_indices: `[S]`;
        packed_info: `[R, 2]`.
    Returns:
        rgb `[R, 3]`, opacity `[R]`, depth `[R]` (expected distance, not normalized), weights `[S]`.
    """
    transmittance, alphas = render_transmittance(sigmas, t_starts, t_ends, packed_info, ray_indices)
    weights = transmittance * alphas
    if stop_eps > 0:
        weights = torch.where(transmittance < stop_eps, torch.zeros_like(weights), weights)
    num_rays = packed_info.shape[0]
    rgb = torch.zeros(num_rays, 3, dtype=rgbs.dtype, device=rgbs.device).index_add_(0, ray_indices, weights[:, None] * rgbs)
    opacity = torch.zeros(num_rays, dtype=weights.dtype, device=weights.device).index_add_(0, ray_indices, weights)
    depth = torch.zeros_like(opacity).index_add_(0, ray_indices, weights * 0.5 * (t_starts + t_ends))
    return rgb, opacity, depth, weights


def update_occupancy(density_ema: torch.Tensor, cell_indices: torch.Tensor, new_density: torch.Tensor, decay: float) -> torch.Tensor:
    """Exponential-moving-max update of a flat density grid, in place.

    ema[c] = max(ema[c] * decay, new[c]) for the evaluated cells.

    Args:
        density_ema: `[C]` running density estimate.
        cell_indices: `[M]` int64 cells that were evaluated; new_density: `[M]` their densities.
    Returns:
        density_ema `[C]` (the same tensor).
    """
    density_ema[cell_indices] = torch.maximum(density_ema[cell_indices] * decay, new_density)
    return density_ema


def sample_plane(plane: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of a plane factor (`grid_sample`, align_corners=True, zeros outside).

    Args:
        plane: `[1, R, H, W]`; W runs along the first coordinate, H along the second.
        coords: normalized coordinates `[N, 2]` in [-1, 1].
    Returns:
        `[R, N]` (components first: products and sums over factors stay contiguous).
    """
    out = F.grid_sample(plane, coords.view(1, -1, 1, 2), mode="bilinear", align_corners=True)
    return out.view(plane.shape[1], -1)


def sample_line(line: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Linear lookup of a line factor (a width-1 `grid_sample`, the fastest form in torch).

    Args:
        line: `[1, R, L, 1]`.
        coords: normalized coordinates `[N]` in [-1, 1].
    Returns:
        `[R, N]`.
    """
    grid = torch.stack([torch.zeros_like(coords), coords], dim=-1).view(1, -1, 1, 2)
    out = F.grid_sample(line, grid, mode="bilinear", align_corners=True)
    return out.view(line.shape[1], -1)


def vm_sample(planes: list[torch.Tensor], lines: list[torch.Tensor], xn: torch.Tensor, reduce: bool) -> torch.Tensor:
    """TensoRF-VM factor products at normalized points.

    Pair i multiplies plane i, looked up at (xn[:, a_i], xn[:, b_i]) with (a_i, b_i) =
    `VM_PLANE_AXES[i]` (a along W, b along H), by line i at xn[:, c_i], c_i = `VM_LINE_AXES[i]`.
    Lookups interpolate with grid values at the ends (align_corners=True) and read zeros outside.

    Args:
        planes: three planes `[R_i, H_i, W_i]`.
        lines: three lines `[R_i, L_i]`.
        xn: normalized points `[N, 3]` in [-1, 1].
        reduce: sum over all components instead of returning them.
    Returns:
        `[R_0 + R_1 + R_2, N]` products (pair 0's components first), or their sum `[N]` if `reduce`.
    """
    products = [
        sample_plane(plane[None], xn[:, [a, b]]) * sample_line(line[None, :, :, None], xn[:, c])
        for plane, line, (a, b), c in zip(planes, lines, VM_PLANE_AXES, VM_LINE_AXES)
    ]
    if reduce:
        return sum((p.sum(0) for p in products), xn.new_zeros(xn.shape[0]))
    return torch.cat(products, dim=0)


def cp_sample(lines: list[torch.Tensor], xn: torch.Tensor, reduce: bool) -> torch.Tensor:
    """TensoRF-CP factor products at normalized points: line a looked up at xn[:, a], a = 0, 1, 2.

    Args:
        lines: three lines `[R, L_a]` along x, y, z.
        xn: normalized points `[N, 3]` in [-1, 1].
        reduce: sum over the components instead of returning them.
    Returns:
        `[R, N]` products, or their sum `[N]` if `reduce`.
    """
    product = (
        sample_line(lines[0][None, :, :, None], xn[:, 0])
        * sample_line(lines[1][None, :, :, None], xn[:, 1])
        * sample_line(lines[2][None, :, :, None], xn[:, 2])
    )
    return product.sum(0) if reduce else product


def trivec_neighbors(
    points: torch.Tensor,
    centers: torch.Tensor,
    half_size: float,
    table: torch.Tensor,
    origin: Sequence[float],
    cell_size: float,
    resolution: Sequence[int],
    k: int,
    chunk: int = 1 << 15,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The K nearest tensors of a Strivec scale covering each point, with weights and local coordinates.

    A point's candidates are the tensors listed in its cell of the lookup grid (cell (i, j, l) spans
    origin + [i, i + 1) * cell_size along x, and so on; row (i * Y + j) * Z + l of `table`). Of
    those, the tensors whose cube covers it (|x - c|_inf <= half_size) are kept, nearest first by
    Euclidean distance d (ties: lower index first), the first `k`, weighted
    w = (1 / d) / sum(1 / d) with d clamped at 1e-6 * half_size, at local coordinates
    u = (x - c) / half_size in [-1, 1]^3. Points outside the grid have no neighbours.

    Args:
        points: `[N, 3]`; centers: `[T, 3]` (same dtype).
        half_size: half the side of every tensor's cube.
        table: `[C, M]` int32 tensor indices per cell, ascending, padded with -1; C = prod(resolution).
        origin, cell_size, resolution: the grid's lower corner (3 values), cell side, cells per axis (3).
        k: neighbour slots per point.
    Returns:
        index `[N, k]` int64 (-1 in empty slots), weights `[N, k]` (0 there), local `[N, k, 3]` (0 there).
    """
    parts = [
        _trivec_neighbors_chunk(part, centers, half_size, table, origin, cell_size, resolution, k)
        for part in torch.split(points, chunk)
    ]
    index, weights, local = zip(*parts)  # torch.split yields one (empty) chunk of no points
    return torch.cat(index), torch.cat(weights), torch.cat(local)


def _trivec_neighbors_chunk(
    points: torch.Tensor,
    centers: torch.Tensor,
    half_size: float,
    table: torch.Tensor,
    origin: Sequence[float],
    cell_size: float,
    resolution: Sequence[int],
    k: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`trivec_neighbors` of `[n, 3]` points at once (`[n, M]` candidates each)."""
    num_tensors = centers.shape[0]
    row = grid_rows(points, origin, cell_size, resolution)
    in_grid = row >= 0
    candidates = table[row.clamp(min=0)].long()
    valid = in_grid[:, None] & (candidates >= 0) & (candidates < num_tensors)
    padded = torch.cat([centers, centers.new_zeros(1, 3)])  # row T: where empty candidates point
    diff = points[:, None, :] - padded[torch.where(valid, candidates, num_tensors)]
    covered = valid & (diff.abs() <= half_size).all(dim=-1)
    dx, dy, dz = diff.unbind(-1)
    distance = torch.where(covered, torch.sqrt(dx * dx + dy * dy + dz * dz), torch.full_like(dx, float("inf")))
    distance, order = torch.sort(distance, dim=1, stable=True)
    if order.shape[1] < k:  # fewer candidates than slots: pad with empty ones
        pad = k - order.shape[1]
        order = torch.cat([order, order.new_zeros(order.shape[0], pad)], dim=1)
        distance = torch.cat([distance, distance.new_full((distance.shape[0], pad), float("inf"))], dim=1)
    order, distance = order[:, :k], distance[:, :k]
    filled = torch.isfinite(distance)
    inverse = torch.where(filled, 1.0 / distance.clamp(min=1e-6 * half_size), torch.zeros_like(distance))
    weights = inverse / inverse.sum(dim=1, keepdim=True).clamp(min=torch.finfo(inverse.dtype).tiny)
    index = torch.where(filled, torch.gather(candidates, 1, order), torch.full_like(order, -1))
    local = torch.where(filled[..., None], torch.gather(diff, 1, order[..., None].expand(-1, -1, 3)) / half_size, 0.0)
    return index, weights, local


def trivec_sample(
    lines: torch.Tensor, index: torch.Tensor, weights: torch.Tensor, local: torch.Tensor, reduce: bool, chunk: int = 1 << 13
) -> torch.Tensor:
    """Weighted tri-vector products of a Strivec scale at its points' neighbour slots.

    Component r at a point is sum_k w_k a_kr(u_x) b_kr(u_y) c_kr(u_z): the lines of tensor
    index[k] along x, y, z looked up linearly at the local coordinates u = local[k] in [-1, 1]
    (grid values at the ends, as `sample_line`). Slots whose index is outside [0, T) add nothing.

    Args:
        lines: `[T, 3, R, L]` (tensor, axis, component, grid point), L >= 2.
        index: `[N, K]` int64; weights: `[N, K]`; local: `[N, K, 3]`.
        reduce: return the sum over components `[N]` instead of the components.
    Returns:
        `[R, N]`, or `[N]` if `reduce`.
    """
    parts = [
        _trivec_sample_chunk(lines, *slots)
        for slots in zip(torch.split(index, chunk), torch.split(weights, chunk), torch.split(local, chunk))
    ]
    features = torch.cat(parts)
    return features.sum(dim=1) if reduce else features.t()


def _trivec_sample_chunk(lines: torch.Tensor, index: torch.Tensor, weights: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
    """`trivec_sample` of `[n, K]` slots, components last: `[n, R]`."""
    num_tensors, _, components, length = lines.shape
    if num_tensors == 0:
        return lines.new_zeros(index.shape[0], components)
    valid = (index >= 0) & (index < num_tensors)
    tensor = torch.where(valid, index, 0)[..., None]  # [n, K, 1]
    pos = (local + 1.0) / 2.0 * (length - 1)
    first = pos.floor().clamp(0, length - 2).long()  # [n, K, 3]
    w0, w1 = (first + 1) - pos, pos - first
    by_point = lines.transpose(2, 3)  # [T, 3, L, R]
    axis = torch.arange(3, device=lines.device)
    values = by_point[tensor, axis, first] * w0[..., None] + by_point[tensor, axis, first + 1] * w1[..., None]  # [n, K, 3, R]
    product = values[:, :, 0] * values[:, :, 1] * values[:, :, 2]
    return (torch.where(valid, weights, 0.0)[..., None] * product).sum(dim=1)


def grid_rows(points: torch.Tensor, origin: Sequence[float], cell_size: float, resolution: Sequence[int]) -> torch.Tensor:
    """Row of the cell lookup grid holding each point, -1 outside the grid (cell (i, j, l) spans
    origin + [i, i + 1) * cell_size along x, and so on; row (i * Y + j) * Z + l; the native
    `grid_row` of `csrc/common.h`). Used by `trivec_neighbors` and `gaussian_mix`.

    Args:
        points: `[N, 3]`. Returns: `[N]` int64.
    """
    res = torch.tensor(list(resolution), device=points.device)
    pos = (points - torch.tensor(list(origin), dtype=points.dtype, device=points.device)) / cell_size
    in_grid = ((pos >= 0) & (pos < res)).all(dim=-1)
    cell = torch.minimum(pos.nan_to_num(0.0).clamp(min=0), (res - 1).to(pos.dtype)).long()
    row = (cell[:, 0] * res[1] + cell[:, 1]) * res[2] + cell[:, 2]
    return torch.where(in_grid, row, torch.full_like(row, -1))


def gaussian_mix(
    points: torch.Tensor,
    means: torch.Tensor,
    precision_factors: torch.Tensor,
    peaks: torch.Tensor,
    features: torch.Tensor,
    cell_start: torch.Tensor,
    cell_gaussians: torch.Tensor,
    origin: Sequence[float],
    cell_size: float,
    resolution: Sequence[int],
    cutoff: float,
    chunk: int = 1 << 14,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Density and density-weighted features of a sum of 3D Gaussians at sample points, each
    point visiting only the Gaussians listed in its cell of the lookup grid.

    Gaussian i weighs w_i(x) = peaks[i] * exp(-q / 2) at x, with q = |P_i (x - means[i])|^2
    (P_i = `precision_factors[i]`, so that P_i^T P_i is the inverse covariance), and 0 where
    q > cutoff^2. A point in cell c (see `grid_rows`; points outside the grid get 0) sums
    over the Gaussians `cell_gaussians[cell_start[c]:cell_start[c + 1]]`:
    density = sum_i w_i, mixed = sum_i w_i features[i] (not normalized).

    Args:
        points: `[S, 3]`; means: `[N, 3]`; precision_factors: `[N, 3, 3]`; peaks: `[N]` (>= 0);
            features: `[N, F]` (F may be 0), all of one dtype.
        cell_start: `[C + 1]` int64 offsets into `cell_gaussians`, C = prod(resolution);
            cell_gaussians: `[L]` int32 Gaussian indices in [0, N).
        origin, cell_size, resolution: the grid's lower corner (3 values), cell side, cells per axis (3).
        cutoff: in standard deviations (3: the 3-sigma ellipsoid).
    Returns:
        density `[S]`, mixed `[S, F]`; differentiable w.r.t. every float input.
    """
    parts = [
        _gaussian_mix_chunk(part, means, precision_factors, peaks, features, cell_start, cell_gaussians, origin, cell_size,
                            resolution, cutoff)  # fmt: skip
        for part in torch.split(points, chunk)
    ]
    density, mixed = zip(*parts)
    return torch.cat(density), torch.cat(mixed)


def _gaussian_mix_chunk(
    points: torch.Tensor,
    means: torch.Tensor,
    precision_factors: torch.Tensor,
    peaks: torch.Tensor,
    features: torch.Tensor,
    cell_start: torch.Tensor,
    cell_gaussians: torch.Tensor,
    origin: Sequence[float],
    cell_size: float,
    resolution: Sequence[int],
    cutoff: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`gaussian_mix` of `[n, 3]` points at once, as a flat list of (point, Gaussian) pairs."""
    cell = grid_rows(points, origin, cell_size, resolution)
    inside = cell >= 0
    first = torch.where(inside, cell_start[cell.clamp(min=0)], 0)
    counts = torch.where(inside, cell_start[cell.clamp(min=0) + 1] - first, 0)
    pair_point = torch.repeat_interleave(torch.arange(points.shape[0], device=points.device), counts)
    pair_offset = torch.arange(pair_point.shape[0], device=points.device) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
    gaussian = cell_gaussians[first[pair_point] + pair_offset].long()
    offset = points[pair_point] - means[gaussian]
    u = torch.einsum("pij,pj->pi", precision_factors[gaussian], offset)
    q = (u * u).sum(-1)
    weight = torch.where(q <= cutoff * cutoff, peaks[gaussian] * torch.exp(-0.5 * q), torch.zeros_like(q))
    density = points.new_zeros(points.shape[0]).index_add(0, pair_point, weight)
    mixed = points.new_zeros(points.shape[0], features.shape[1]).index_add(0, pair_point, weight[:, None] * features[gaussian])
    return density, mixed


#: instant-ngp's spatial-hash primes, one per axis (`csrc/hashgrid/hashgrid.h`)
HASH_PRIMES = (1, 2654435761, 805459861)


def hash_level_resolutions(levels: int, base_resolution: float, finest_resolution: float) -> list[int]:
    """Cells per axis of each level of a hash encoding: instant-ngp's floor(base * b^l) with
    b = exp((ln finest - ln base) / (L - 1)), so that level L - 1 has the finest resolution (the
    product is rounded up by a relative 1e-9 first, lest b^l land a hair below an integer); one
    level has the base resolution."""
    if levels == 1:
        return [math.floor(base_resolution)]
    growth = math.exp((math.log(finest_resolution) - math.log(base_resolution)) / (levels - 1))
    return [math.floor(base_resolution * growth**level * (1.0 + 1e-9)) for level in range(levels)]


def hash_encode(
    points: torch.Tensor, table: torch.Tensor, base_resolution: float, finest_resolution: float, chunk: int = 1 << 16
) -> torch.Tensor:
    """instant-ngp's multiresolution hash encoding of points in the unit cube.

    Level l is a grid of R_l cells per axis (`hash_level_resolutions`); a point (clamped to
    [0, 1]^3, NaN read as 0) sits at pos = x R_l between vertices i0 = min(floor(pos), R_l - 1) and
    i0 + 1 per axis, weighted (1 - w, w), w = pos - i0. Vertex (i, j, k) is row i + (R + 1) (j + (R + 1) k)
    of the level's table where (R + 1)^3 <= T (dense), else (i ^ j * 2654435761 ^ k * 805459861) mod T.
    The level's features are the trilinear sum of its 8 corners' rows. Points get no gradient.

    Args:
        points: `[N, 3]` in [0, 1]; table: `[L, T, F]` (T a power of two), the points' dtype.
        base_resolution, finest_resolution: the resolutions of the first and last level.
    Returns:
        `[N, L * F]`, level l's features at columns l * F to (l + 1) * F; differentiable w.r.t. the table.
    """
    resolutions = hash_level_resolutions(table.shape[0], base_resolution, finest_resolution)
    x = points.detach().nan_to_num(0.0).clamp(0.0, 1.0)
    parts = [_hash_encode_chunk(part, table, resolutions) for part in torch.split(x, chunk)]
    return torch.cat(parts)  # torch.split yields one (empty) chunk of no points


def _hash_encode_chunk(x: torch.Tensor, table: torch.Tensor, resolutions: list[int]) -> torch.Tensor:
    """`hash_encode` of `[n, 3]` clamped points at once: `[n, L * F]`."""
    size = table.shape[1]
    bits = torch.tensor([[(c >> a) & 1 for a in range(3)] for c in range(8)], device=x.device)  # [8, 3], corner c
    features = []
    for level, res in enumerate(resolutions):
        pos = x * res
        first = pos.floor().clamp(max=res - 1)
        w1 = pos - first
        weight = torch.where(bits.bool(), w1[:, None, :], 1.0 - w1[:, None, :]).prod(dim=-1)  # [n, 8]
        i, j, k = (first.long()[:, None, :] + bits).unbind(-1)  # [n, 8] each
        if (res + 1) ** 3 <= size:
            row = i + (res + 1) * (j + (res + 1) * k)
        else:
            row = (i * HASH_PRIMES[0] ^ j * HASH_PRIMES[1] ^ k * HASH_PRIMES[2]) & (size - 1)
        features.append((weight[..., None] * table[level][row]).sum(dim=1))
    return torch.cat(features, dim=1)
