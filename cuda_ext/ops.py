"""Public ops: validate arguments, then run the native kernel when built, else the reference."""

from __future__ import annotations

import torch

from . import reference
from ._backend import native, status
from ._checks import check_tensor

__all__ = ["march_rays"]


def march_rays(
    rays_o: torch.Tensor,
    rays_d: torch.Tensor,
    t_min: torch.Tensor,
    t_max: torch.Tensor,
    occupied: torch.Tensor,
    aabb: torch.Tensor,
    step_size: float,
    jitter: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Occupancy-grid marching; same contract as `reference.march_rays`.

    Args:
        rays_o, rays_d: `[R, 3]` float32; t_min, t_max: `[R]` float32; occupied: `[X, Y, Z]` bool;
        aabb: `[2, 3]` float32; step_size > 0; jitter: optional `[R]` float32 in [0, 1).
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
    module = native()
    if module is None or (device.type == "cuda" and not status()["cuda"]):
        return reference.march_rays(rays_o, rays_d, t_min, t_max, occupied, aabb, step_size, jitter)
    if jitter is None:
        jitter = torch.zeros_like(t_min)
    return tuple(module.march_rays_fwd(rays_o, rays_d, t_min, t_max, occupied, aabb, float(step_size), jitter))
