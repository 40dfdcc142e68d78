"""Losses on the samples of rendered rays (`RaySamples`): mip-NeRF 360's distortion loss, and
the depth loss of rays whose surface distance is known.

The distortion loss pulls each ray's weights together into as short a stretch as the image
allows, which removes the thin clouds ("floaters") a field grows in front of the cameras to fake
what the other views disagree on, and leaves fewer samples to march. It is computed on the
packed samples the renderer keeps, in O(S) with per-ray running sums (mip-NeRF 360, eq. 15, in
the form nerfacc's `distortion` uses):

    L = sum_ij w_i w_j |m_i - m_j| + 1/3 sum_i w_i^2 (s1_i - s0_i)
      = 2 sum_i w_i (m_i W_i - M_i) + 1/3 sum_i w_i^2 (s1_i - s0_i),

with W_i, M_i the sums of w_j and w_j m_j over the ray's samples before i, and s a normalized
distance (`ray_distance`) so that the far background does not dominate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

__all__ = ["RaySamples", "sample_weights", "distortion", "ray_distance", "ray_distortion", "depth_error"]


@dataclass
class RaySamples:
    """The composited samples of a batch of rays: ray_indices `[S]` int64, t_starts, t_ends `[S]`
    (distances along the rays), weights `[S]` (differentiable), packed_info `[R, 2]`."""

    ray_indices: torch.Tensor
    t_starts: torch.Tensor
    t_ends: torch.Tensor
    weights: torch.Tensor
    packed_info: torch.Tensor

    def scaled(self, factor: float) -> "RaySamples":
        """The same samples with distances multiplied by `factor` (e.g. into world units)."""
        if factor == 1.0:
            return self
        return replace(self, t_starts=self.t_starts * factor, t_ends=self.t_ends * factor)


def _exclusive_ray_cumsum(values: torch.Tensor, packed_info: torch.Tensor, ray_indices: torch.Tensor) -> torch.Tensor:
    """Per ray, the sum of `values [S]` over the ray's earlier samples, `[S]`."""
    running = torch.cat([values.new_zeros(1, dtype=torch.float64), values.double().cumsum(0)])  # float64: the
    # running sum over all rays would cancel away a ray's own digits in float32
    return (running[:-1] - running[packed_info[ray_indices, 0]]).to(values.dtype)


def sample_weights(
    sigmas: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor, ray_indices: torch.Tensor, packed_info: torch.Tensor
) -> torch.Tensor:
    """Compositing weights T_i (1 - exp(-sigma_i dt_i)) of packed samples, `[S]`, differentiable
    with respect to `sigmas [S]` (the native `composite` gives them without gradients)."""
    optical = sigmas * (t_ends - t_starts)
    transmittance = torch.exp(-_exclusive_ray_cumsum(optical, packed_info, ray_indices))
    return transmittance * (1.0 - torch.exp(-optical))


def ray_distance(t: torch.Tensor) -> torch.Tensor:
    """The normalized distance s of distances `t` along rays of the contraction's frame (the
    foreground ball's radius is 1): t up to 1, then 2 - 1/t, as the contraction spaces them."""
    return torch.where(t <= 1.0, t, 2.0 - 1.0 / t.clamp(min=1.0))


def distortion(
    weights: torch.Tensor, s_starts: torch.Tensor, s_ends: torch.Tensor, ray_indices: torch.Tensor, packed_info: torch.Tensor
) -> torch.Tensor:
    """mip-NeRF 360's distortion loss of each ray, `[R]`.

    Args:
        weights: compositing weights `[S]` (`sample_weights`); s_starts, s_ends: the samples'
            intervals in normalized distance `[S]`, in order along each ray; ray_indices `[S]`
            int64; packed_info `[R, 2]` (first sample, count) int64.
    """
    midpoints = 0.5 * (s_starts + s_ends)
    before = _exclusive_ray_cumsum(weights, packed_info, ray_indices)
    moment_before = _exclusive_ray_cumsum(weights * midpoints, packed_info, ray_indices)
    per_sample = 2.0 * weights * (midpoints * before - moment_before) + weights**2 * (s_ends - s_starts) / 3.0
    return torch.zeros(len(packed_info), dtype=weights.dtype, device=weights.device).index_add_(0, ray_indices, per_sample)


def ray_distortion(samples: RaySamples, radius: float | None) -> torch.Tensor:
    """Each ray's distortion loss `[R]`: over `ray_distance` of the distances in units of the
    foreground ball's `radius` for unbounded scenes, over the distances as they are otherwise."""
    if radius is None:
        starts, ends = samples.t_starts, samples.t_ends
    else:
        starts, ends = ray_distance(samples.t_starts / radius), ray_distance(samples.t_ends / radius)
    return distortion(samples.weights, starts, ends, samples.ray_indices, samples.packed_info)


def depth_error(samples: RaySamples, targets: torch.Tensor) -> torch.Tensor:
    """How far each ray's weights lie from its known surface distance `targets [R]` (> 0, the
    distances' units), `[R]`: sum_i w_i (log m_i - log target)^2 over its samples' midpoints m_i,
    in log space so that a far wall counts as much as a near object, plus (1 - opacity)^2,
    since the ray ends at that surface (DS-NeRF's loss, without its per-point uncertainty)."""
    midpoints = 0.5 * (samples.t_starts + samples.t_ends)
    log_error = (torch.log(midpoints.clamp(min=1e-9)) - torch.log(targets[samples.ray_indices])) ** 2
    num_rays = len(samples.packed_info)
    spread = torch.zeros(num_rays, dtype=samples.weights.dtype, device=samples.weights.device).index_add_(
        0, samples.ray_indices, samples.weights * log_error
    )
    opacity = torch.zeros_like(spread).index_add_(0, samples.ray_indices, samples.weights)
    return spread + (1.0 - opacity) ** 2
