"""Public ops: validate arguments, then run the native kernel when built, else the reference.

Arguments are checked here (shape, dtype, device, layout), so a kernel only ever sees tensors
it can read, and a mistake is reported naming the argument. Checks of values (packed offsets and
cell indices in range) read the tensors, a device sync on CUDA, so they run only with
`TENSORFIELDS_DEBUG=1` (see `cuda_ext._checks`).

The box `aabb` may live on any device: the native kernels take its six numbers by value, so a
CPU box (`OccupancyGrid.host_aabb()`) spares a device-to-host copy per call on CUDA; the
reference path moves it to the rays' device.
"""

from __future__ import annotations

import math
import torch

from . import reference
from ._backend import kernels_for
from ._checks import check_index_range, check_packed_info, check_tensor, debug_checks

__all__ = ["ray_aabb_intersect", "march_rays", "render_transmittance", "composite", "update_occupancy"]


def ray_aabb_intersect(
    rays_o: torch.Tensor, rays_d: torch.Tensor, aabb: torch.Tensor, near: float = 0.0, far: float | torch.Tensor = math.inf
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab test of rays against a box, clipped to [near, far]; see `reference.ray_aabb_intersect`.

    Args:
        rays_o, rays_d: `[R, 3]` float32; aabb: `[2, 3]` float32 (any device); far: a number or `[R]` float32.
    Returns:
        t_min `[R]`, t_max `[R]`, hit `[R]` bool.
    """
    device = check_tensor("rays_o", rays_o, (None, 3), torch.float32).device
    num_rays = rays_o.shape[0]
    check_tensor("rays_d", rays_d, (num_rays, 3), torch.float32, device)
    check_tensor("aabb", aabb, (2, 3), torch.float32)
    if isinstance(far, torch.Tensor):
        check_tensor("far", far, (num_rays,), torch.float32, device)
    module = kernels_for(device)
    if module is None:
        return reference.ray_aabb_intersect(rays_o, rays_d, aabb.to(device), near, far)
    far_per_ray = far if isinstance(far, torch.Tensor) else torch.full((num_rays,), float(far), device=device)
    return tuple(module.ray_aabb_intersect(rays_o, rays_d, aabb, float(near), far_per_ray))


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
    max_step: float = math.inf,
    contracted: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Occupancy-grid marching; same contract as `reference.march_rays`.

    Args:
        rays_o, rays_d: `[R, 3]` float32; t_min, t_max: `[R]` float32; occupied: `[X, Y, Z]` bool;
        aabb: `[2, 3]` float32 (any device); step_size > 0; jitter: optional `[R]` float32 in [0, 1);
        cone_angle >= 0 (0: fixed steps); max_step >= step_size (longest cone step); contracted:
        `occupied` and `aabb` are in mip-NeRF 360's contracted space (`reference.contract`).
    Returns:
        ray_indices `[S]` int64, t_starts `[S]`, t_ends `[S]`, packed_info `[R, 2]` int64.
    """
    device = check_tensor("rays_o", rays_o, (None, 3), torch.float32).device
    num_rays = rays_o.shape[0]
    check_tensor("rays_d", rays_d, (num_rays, 3), torch.float32, device)
    check_tensor("t_min", t_min, (num_rays,), torch.float32, device)
    check_tensor("t_max", t_max, (num_rays,), torch.float32, device)
    check_tensor("occupied", occupied, (None, None, None), torch.bool, device)
    check_tensor("aabb", aabb, (2, 3), torch.float32)
    if jitter is not None:
        check_tensor("jitter", jitter, (num_rays,), torch.float32, device)
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    if not cone_angle >= 0:
        raise ValueError(f"cone_angle must be >= 0, got {cone_angle}")
    if not max_step >= step_size:
        raise ValueError(f"max_step ({max_step}) must be >= step_size ({step_size})")
    module = kernels_for(device)
    if module is None:
        return reference.march_rays(
            rays_o, rays_d, t_min, t_max, occupied, aabb.to(device), step_size, jitter, cone_angle, max_step, contracted
        )
    if jitter is None:
        jitter = torch.zeros_like(t_min)
    max_step = min(float(max_step), torch.finfo(torch.float32).max)
    return tuple(
        module.march_rays(
            rays_o, rays_d, t_min, t_max, occupied, aabb, float(step_size), float(cone_angle), max_step, bool(contracted), jitter
        )
    )


def _check_packed(
    sigmas: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor, packed_info: torch.Tensor
) -> torch.device:
    """Packed samples `[S]` of one float dtype, and (with `debug_checks()`) (first, count) rows that
    stay inside them."""
    if not isinstance(sigmas, torch.Tensor) or sigmas.dtype not in (torch.float32, torch.float64):
        got = sigmas.dtype if isinstance(sigmas, torch.Tensor) else type(sigmas).__name__
        raise TypeError(f"sigmas must be a float32 or float64 torch.Tensor, got {got}")
    device = check_tensor("sigmas", sigmas, (None,), sigmas.dtype).device
    num_samples = sigmas.shape[0]
    check_tensor("t_starts", t_starts, (num_samples,), sigmas.dtype, device)
    check_tensor("t_ends", t_ends, (num_samples,), sigmas.dtype, device)
    check_tensor("packed_info", packed_info, (None, 2), torch.int64, device)
    if debug_checks():
        check_packed_info(packed_info, num_samples)
    return device


def render_transmittance(
    sigmas: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor, packed_info: torch.Tensor, ray_indices: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Transmittance before each sample and its alpha, `[S]` each (no gradients); see
    `reference.render_transmittance`."""
    device = _check_packed(sigmas, t_starts, t_ends, packed_info)
    module = kernels_for(device)
    if module is None:
        return reference.render_transmittance(sigmas, t_starts, t_ends, packed_info, ray_indices)
    with torch.no_grad():
        return tuple(module.transmittance(sigmas.detach(), t_starts, t_ends, packed_info))


class _Composite(torch.autograd.Function):
    """Native packed compositing; gradients w.r.t. sigmas and rgbs (weights are an output only)."""

    @staticmethod
    def forward(ctx, sigmas, rgbs, t_starts, t_ends, packed_info, stop_eps, module):
        rgb, opacity, depth, weights, transmittance = module.composite_forward(sigmas, rgbs, t_starts, t_ends, packed_info, stop_eps)
        ctx.save_for_backward(sigmas, rgbs, t_starts, t_ends, packed_info, weights, transmittance)
        ctx.stop_eps, ctx.module = stop_eps, module
        ctx.mark_non_differentiable(weights)
        return rgb, opacity, depth, weights

    @staticmethod
    def backward(ctx, grad_rgb, grad_opacity, grad_depth, _grad_weights):
        sigmas, rgbs, t_starts, t_ends, packed_info, weights, transmittance = ctx.saved_tensors
        grad_sigmas, grad_rgbs = ctx.module.composite_backward(
            grad_rgb.contiguous(), grad_opacity.contiguous(), grad_depth.contiguous(),
            sigmas, rgbs, t_starts, t_ends, packed_info, weights, transmittance, ctx.stop_eps,
        )  # fmt: skip
        return grad_sigmas, grad_rgbs, None, None, None, None, None


def composite(
    sigmas: torch.Tensor,
    rgbs: torch.Tensor,
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    ray_indices: torch.Tensor,
    packed_info: torch.Tensor,
    stop_eps: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Differentiable volume rendering of packed samples; see `reference.composite`.

    Args:
        sigmas: `[S]` float32/float64; rgbs: `[S, 3]`; t_starts, t_ends: `[S]`; ray_indices: `[S]`
        int64; packed_info: `[R, 2]` int64; stop_eps: early termination threshold (0: none).
    Returns:
        rgb `[R, 3]`, opacity `[R]`, depth `[R]`, weights `[S]` (not differentiable natively).
    """
    device = _check_packed(sigmas, t_starts, t_ends, packed_info)
    check_tensor("rgbs", rgbs, (sigmas.shape[0], 3), sigmas.dtype, device)
    check_tensor("ray_indices", ray_indices, (sigmas.shape[0],), torch.int64, device)
    module = kernels_for(device)
    if module is None:
        return reference.composite(sigmas, rgbs, t_starts, t_ends, ray_indices, packed_info, stop_eps)
    return _Composite.apply(sigmas, rgbs, t_starts, t_ends, packed_info, float(stop_eps), module)


def update_occupancy(density_ema: torch.Tensor, cell_indices: torch.Tensor, new_density: torch.Tensor, decay: float) -> torch.Tensor:
    """ema[c] = max(ema[c] * decay, new[c]) in place for the evaluated cells; see
    `reference.update_occupancy`.

    Args:
        density_ema: `[C]` float32; cell_indices: `[M]` int64, unique, in [0, C) (checked with
            `TENSORFIELDS_DEBUG=1`); new_density: `[M]` float32.
    Returns:
        density_ema (the same tensor).
    """
    device = check_tensor("density_ema", density_ema, (None,), torch.float32).device
    check_tensor("cell_indices", cell_indices, (None,), torch.int64, device)
    check_tensor("new_density", new_density, (cell_indices.shape[0],), torch.float32, device)
    if debug_checks():
        check_index_range(cell_indices, 0, density_ema.shape[0], f"cell_indices must lie in [0, {density_ema.shape[0]})")
    module = kernels_for(device)
    if module is None:
        return reference.update_occupancy(density_ema, cell_indices, new_density, decay)
    module.update_occupancy(density_ema, cell_indices, new_density.detach(), float(decay))
    return density_ema
