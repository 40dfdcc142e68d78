"""The distortion loss: its O(S) form against mip-NeRF 360's double sum, its weights and their
gradients against the reference compositing, and its use in training."""

from __future__ import annotations

import pytest
import torch

from cuda_ext import packed_info_from_counts, reference
from render.losses import RaySamples, depth_error, distortion, ray_distance, sample_weights


def _packed(counts: list[int], seed: int = 0, dtype: torch.dtype = torch.float64):
    """Random packed samples in order along each ray: (sigmas, t_starts, t_ends, ray_indices, packed_info)."""
    g = torch.Generator().manual_seed(seed)
    counts_t = torch.tensor(counts)
    starts = [torch.sort(torch.rand(c, generator=g, dtype=dtype) * 3.0).values for c in counts]
    t_starts = torch.cat(starts)
    t_ends = t_starts + 0.01 + 0.05 * torch.rand(len(t_starts), generator=g, dtype=dtype)
    sigmas = 4.0 * torch.rand(len(t_starts), generator=g, dtype=dtype)
    ray_indices = torch.repeat_interleave(torch.arange(len(counts)), counts_t)
    return sigmas, t_starts, t_ends, ray_indices, packed_info_from_counts(counts_t)


def test_distortion_equals_the_double_sum_of_mipnerf360() -> None:
    sigmas, t_starts, t_ends, ray_indices, packed_info = _packed([4, 0, 7, 1, 12])
    weights = sample_weights(sigmas, t_starts, t_ends, ray_indices, packed_info)
    loss = distortion(weights, t_starts, t_ends, ray_indices, packed_info)
    mid = 0.5 * (t_starts + t_ends)
    for ray in range(len(packed_info)):
        mine = ray_indices == ray
        w, m, length = weights[mine], mid[mine], (t_ends - t_starts)[mine]
        expected = (w[:, None] * w[None, :] * (m[:, None] - m[None, :]).abs()).sum() + (w**2 * length).sum() / 3.0
        torch.testing.assert_close(loss[ray], expected)
    assert loss[1] == 0.0  # a ray without samples


def test_sample_weights_and_their_gradients_match_the_reference_compositing() -> None:
    sigmas, t_starts, t_ends, ray_indices, packed_info = _packed([5, 3, 9], seed=1)
    sigmas.requires_grad_()
    weights = sample_weights(sigmas, t_starts, t_ends, ray_indices, packed_info)
    rgbs = torch.zeros(len(sigmas), 3, dtype=sigmas.dtype)
    *_, expected = reference.composite(sigmas, rgbs, t_starts, t_ends, ray_indices, packed_info)
    torch.testing.assert_close(weights, expected)
    probe = torch.randn(len(sigmas), dtype=sigmas.dtype, generator=torch.Generator().manual_seed(2))
    (grad,) = torch.autograd.grad((weights * probe).sum(), sigmas)
    (expected_grad,) = torch.autograd.grad((expected * probe).sum(), sigmas)
    torch.testing.assert_close(grad, expected_grad)
    torch.autograd.gradcheck(
        lambda s: distortion(sample_weights(s, t_starts, t_ends, ray_indices, packed_info), t_starts, t_ends, ray_indices, packed_info),
        (sigmas,),
    )


def test_a_compact_ray_costs_less_than_a_cloudy_one() -> None:
    """Same opacity, one surface against a cloud spread along the ray: the loss prefers the surface."""
    t_starts = torch.linspace(0.0, 2.0, 41, dtype=torch.float64)[:-1]
    t_ends = t_starts + 0.05
    ray_indices = torch.zeros(40, dtype=torch.long)
    packed_info = packed_info_from_counts(torch.tensor([40]))
    surface = torch.zeros(40, dtype=torch.float64)
    surface[20] = 60.0
    cloud = torch.full((40,), 1.5, dtype=torch.float64)
    losses = [
        distortion(sample_weights(s, t_starts, t_ends, ray_indices, packed_info), t_starts, t_ends, ray_indices, packed_info)
        for s in (surface, cloud)
    ]
    assert losses[0] < 0.1 * losses[1]


def test_ray_distance_is_continuous_and_bounded() -> None:
    t = torch.tensor([0.0, 0.5, 1.0, 1.0 + 1e-6, 2.0, 1e6])
    s = ray_distance(t)
    torch.testing.assert_close(s[:3], t[:3])
    assert abs(float(s[3] - 1.0)) < 1e-5 and float(s[4]) == pytest.approx(1.5) and float(s[-1]) < 2.0


def test_depth_error_is_the_weights_log_spread_around_the_target_and_the_missing_opacity() -> None:
    sigmas, t_starts, t_ends, ray_indices, packed_info = _packed([6, 0, 9], seed=3)
    weights = sample_weights(sigmas, t_starts, t_ends, ray_indices, packed_info)
    targets = torch.tensor([1.0, 2.0, 1.5], dtype=torch.float64)
    error = depth_error(RaySamples(ray_indices, t_starts, t_ends, weights, packed_info), targets)
    mid = 0.5 * (t_starts + t_ends)
    for ray in range(3):
        mine = ray_indices == ray
        w = weights[mine]
        expected = (w * (torch.log(mid[mine]) - torch.log(targets[ray])) ** 2).sum() + (1.0 - w.sum()) ** 2
        torch.testing.assert_close(error[ray], expected)
    assert error[1] == 1.0  # no samples: all of the opacity is missing


def test_depth_error_prefers_the_surface_at_the_target() -> None:
    t_starts = torch.linspace(0.0, 2.0, 41, dtype=torch.float64)[:-1]
    t_ends = t_starts + 0.05
    ray_indices = torch.zeros(40, dtype=torch.long)
    packed_info = packed_info_from_counts(torch.tensor([40]))
    errors = []
    for at in (20, 10):  # an opaque surface at the target (t = 1.0), and one in front of it
        sigmas = torch.zeros(40, dtype=torch.float64)
        sigmas[at] = 200.0
        samples = RaySamples(ray_indices, t_starts, t_ends, sample_weights(sigmas, t_starts, t_ends, ray_indices, packed_info), packed_info)
        errors.append(float(depth_error(samples, torch.tensor([1.025], dtype=torch.float64))))
    assert errors[0] < 1e-3 < 0.1 < errors[1]
