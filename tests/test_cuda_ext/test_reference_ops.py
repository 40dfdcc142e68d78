"""The pure-torch reference ops: ray/box intersection, marching, compositing, occupancy update."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cuda_ext import reference as ops

UNIT_BOX = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])


# --- ray_aabb_intersect ---------------------------------------------------------------------------


def test_ray_aabb_hand_examples() -> None:
    s = 1.0 / math.sqrt(2.0)
    rays_o = torch.tensor(
        [
            [-1.0, 0.5, 0.5],  # hits the x = 0 face at t = 1, leaves at t = 2
            [-1.0, 2.0, 0.5],  # passes above the box: miss
            [0.5, 0.5, 0.5],  # starts inside: t_min clipped to near = 0, leaves at t = 0.5
            [0.25, 0.75, -1.0],  # parallel to x and y, hits along z: [1, 2]
            [2.0, 0.5, 0.5],  # points away from the box: miss
            [-1.0, -1.0, 0.5],  # diagonal in xy, corner to corner: [sqrt(2), 2 sqrt(2)]
            [0.5, 0.5, 3.0],  # towards -z: [2, 3]
        ]
    )
    rays_d = torch.tensor(
        [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [s, s, 0.0], [0.0, 0.0, -1.0]]
    )
    t_min, t_max, hit = ops.ray_aabb_intersect(rays_o, rays_d, UNIT_BOX)
    assert hit.tolist() == [True, False, True, True, False, True, True]
    expected_min = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, math.sqrt(2.0), 2.0])
    expected_max = torch.tensor([2.0, 0.0, 0.5, 2.0, 0.0, 2.0 * math.sqrt(2.0), 3.0])
    torch.testing.assert_close(t_min[hit], expected_min[hit])
    torch.testing.assert_close(t_max[hit], expected_max[hit])
    assert (t_max[~hit] <= t_min[~hit]).all()


def test_ray_aabb_parallel_outside_slab_misses() -> None:
    # parallel to the x = const planes, but x is outside [0, 1]: never enters, whatever y/z do
    rays_o = torch.tensor([[1.5, 0.5, -1.0], [-0.5, -1.0, 0.5], [0.5, 1.5, 0.5]])
    rays_d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, -0.0, 1.0]])
    _, _, hit = ops.ray_aabb_intersect(rays_o, rays_d, UNIT_BOX)
    assert hit.tolist() == [False, False, False]


def test_ray_aabb_near_far_clipping() -> None:
    rays_o = torch.tensor([[-1.0, 0.5, 0.5]] * 3)
    rays_d = torch.tensor([[1.0, 0.0, 0.0]] * 3)
    t_min, t_max, hit = ops.ray_aabb_intersect(rays_o, rays_d, UNIT_BOX, near=1.5, far=1.75)
    torch.testing.assert_close(t_min, torch.full((3,), 1.5))
    torch.testing.assert_close(t_max, torch.full((3,), 1.75))
    assert hit.all()
    _, _, hit = ops.ray_aabb_intersect(rays_o, rays_d, UNIT_BOX, near=2.5)  # box is behind near
    assert not hit.any()
    _, _, hit = ops.ray_aabb_intersect(rays_o, rays_d, UNIT_BOX, far=0.5)  # box is beyond far
    assert not hit.any()


def test_ray_aabb_non_unit_direction_in_units_of_d() -> None:
    t_min, t_max, hit = ops.ray_aabb_intersect(torch.tensor([[-1.0, 0.5, 0.5]]), torch.tensor([[2.0, 0.0, 0.0]]), UNIT_BOX)
    torch.testing.assert_close(torch.stack([t_min, t_max], -1), torch.tensor([[0.5, 1.0]]))


# --- march_rays ---------------------------------------------------------------------------------


def random_rays(n: int, generator_seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays from a shell around the unit box aimed at random points inside it."""
    g = torch.Generator().manual_seed(generator_seed)
    origins = 0.5 + 1.5 * F.normalize(torch.randn(n, 3, generator=g), dim=-1)
    targets = torch.rand(n, 3, generator=g)
    return origins, F.normalize(targets - origins, dim=-1)


def march(rays_o, rays_d, occupied, step, jitter=None, aabb=UNIT_BOX):
    t_min, t_max, _ = ops.ray_aabb_intersect(rays_o, rays_d, aabb)
    return (t_min, t_max), ops.march_rays(rays_o, rays_d, t_min, t_max, occupied, aabb, step, jitter)


def check_packing(ray_indices: torch.Tensor, packed_info: torch.Tensor, num_rays: int) -> None:
    assert ray_indices.dtype == torch.int64 and packed_info.dtype == torch.int64
    assert packed_info.shape == (num_rays, 2)
    assert (ray_indices[1:] >= ray_indices[:-1]).all(), "samples must be sorted by ray"
    counts = torch.bincount(ray_indices, minlength=num_rays)
    assert torch.equal(packed_info[:, 1], counts)
    assert torch.equal(packed_info[:, 0], torch.cumsum(counts, 0) - counts)
    for r in range(num_rays):
        start, count = packed_info[r].tolist()
        assert (ray_indices[start : start + count] == r).all()


def test_march_full_grid_tiles_segment() -> None:
    rays_o, rays_d = random_rays(64)
    step = 0.05
    (t_min, t_max), (ray_indices, t_starts, t_ends, packed_info) = march(rays_o, rays_d, torch.ones(4, 4, 4, dtype=torch.bool), step)
    check_packing(ray_indices, packed_info, 64)
    torch.testing.assert_close(t_ends - t_starts, torch.full_like(t_starts, step))
    for r in range(64):
        start, count = packed_info[r].tolist()
        ts, te = t_starts[start : start + count], t_ends[start : start + count]
        # as many samples as have their midpoint before t_max, starting exactly at t_min, gapless
        expected_count = math.ceil((t_max[r] - t_min[r]).item() / step - 0.5)
        assert count == expected_count, (r, count, expected_count)
        assert ts[0].item() == pytest.approx(t_min[r].item(), abs=1e-6)
        torch.testing.assert_close(ts[1:], te[:-1])
        assert ((ts + te) / 2 < t_max[r]).all()
        assert te[-1] + step / 2 >= t_max[r] - 1e-5  # the next midpoint would pass t_max


def test_march_empty_grid_gives_no_samples() -> None:
    rays_o, rays_d = random_rays(16)
    _, (ray_indices, t_starts, t_ends, packed_info) = march(rays_o, rays_d, torch.zeros(8, 8, 8, dtype=torch.bool), 0.01)
    assert ray_indices.numel() == t_starts.numel() == t_ends.numel() == 0
    assert torch.equal(packed_info, torch.zeros(16, 2, dtype=torch.int64))


def test_march_one_occupied_cell() -> None:
    rays_o, rays_d = random_rays(300, generator_seed=1)
    step = 0.02
    occupied = torch.zeros(4, 4, 4, dtype=torch.bool)
    occupied[1, 2, 3] = True  # x in [0.25, 0.5], y in [0.5, 0.75], z in [0.75, 1]
    _, (ray_indices, t_starts, t_ends, packed_info) = march(rays_o, rays_d, occupied, step)
    check_packing(ray_indices, packed_info, 300)
    assert ray_indices.numel() > 0
    mid = rays_o[ray_indices] + rays_d[ray_indices] * ((t_starts + t_ends) / 2)[:, None]
    lo, hi = torch.tensor([0.25, 0.5, 0.75]), torch.tensor([0.5, 0.75, 1.0])
    assert ((mid >= lo - 1e-6) & (mid <= hi + 1e-6)).all()
    # and nothing in that cell is missed: the same samples as the full grid, filtered by cell
    _, (full_idx, full_starts, full_ends, _) = march(rays_o, rays_d, torch.ones(4, 4, 4, dtype=torch.bool), step)
    full_mid = rays_o[full_idx] + rays_d[full_idx] * ((full_starts + full_ends) / 2)[:, None]
    in_cell = ((full_mid >= lo) & (full_mid < hi)).all(-1)
    assert torch.equal(ray_indices, full_idx[in_cell])
    torch.testing.assert_close(t_starts, full_starts[in_cell])


def test_march_zero_rays() -> None:
    empty = torch.zeros(0, 3)
    ray_indices, t_starts, t_ends, packed_info = ops.march_rays(
        empty, empty, torch.zeros(0), torch.zeros(0), torch.ones(4, 4, 4, dtype=torch.bool), UNIT_BOX, 0.1
    )
    assert ray_indices.shape == (0,) and ray_indices.dtype == torch.int64
    assert t_starts.shape == (0,) and t_ends.shape == (0,)
    assert packed_info.shape == (0, 2)


def test_march_missing_rays_have_no_samples() -> None:
    rays_o = torch.tensor([[-1.0, 0.5, 0.5], [-1.0, 2.0, 0.5], [-1.0, 0.5, 0.5]])
    rays_d = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    _, (ray_indices, t_starts, _, packed_info) = march(rays_o, rays_d, torch.ones(2, 2, 2, dtype=torch.bool), 0.25)
    assert packed_info.tolist() == [[0, 4], [4, 0], [4, 0]]
    torch.testing.assert_close(t_starts, torch.tensor([1.0, 1.25, 1.5, 1.75]))


@pytest.mark.parametrize("value", [True, False])
def test_march_resolution_one_grid(value: bool) -> None:
    rays_o, rays_d = random_rays(20)
    single = torch.full((1, 1, 1), value)
    _, (ray_indices, t_starts, _, packed_info) = march(rays_o, rays_d, single, 0.05)
    _, (full_idx, full_starts, _, full_info) = march(rays_o, rays_d, torch.ones(3, 3, 3, dtype=torch.bool), 0.05)
    if value:
        assert torch.equal(ray_indices, full_idx) and torch.equal(packed_info, full_info)
        torch.testing.assert_close(t_starts, full_starts)
    else:
        assert ray_indices.numel() == 0 and (packed_info[:, 1] == 0).all()


def test_march_jitter_shifts_within_step() -> None:
    rays_o, rays_d = random_rays(50)
    step = 0.05
    jitter = torch.rand(50)
    jitter[0], jitter[1] = 0.0, 0.999
    (t_min, t_max), (ray_indices, t_starts, t_ends, packed_info) = march(
        rays_o, rays_d, torch.ones(4, 4, 4, dtype=torch.bool), step, jitter
    )
    check_packing(ray_indices, packed_info, 50)
    offset = (t_starts - t_min[ray_indices]) / step
    k = torch.cat([torch.arange(c) for c in packed_info[:, 1].tolist()]).float()
    # sample k starts at t_min + (k + j_r) * step: shifted by j_r * step in [0, step)
    torch.testing.assert_close(offset - k, jitter[ray_indices], atol=1e-4, rtol=0)
    assert (t_starts >= t_min[ray_indices] - 1e-6).all()
    assert ((t_starts + t_ends) / 2 < t_max[ray_indices]).all()
    expected_counts = torch.ceil((t_max - t_min) / step - 0.5 - jitter).clamp(min=0).long()
    assert torch.equal(packed_info[:, 1], expected_counts)


# --- compositing -----------------------------------------------------------------------------


def two_ray_example(dtype=torch.float32):
    """Ray 0: two samples; ray 1: none; ray 2: one sample."""
    sigmas = torch.tensor([1.0, 2.0, 3.0], dtype=dtype)
    t_starts = torch.tensor([0.0, 0.5, 1.0], dtype=dtype)
    t_ends = torch.tensor([0.5, 0.75, 1.1], dtype=dtype)
    rgbs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.2, 0.4, 0.6]], dtype=dtype)
    ray_indices = torch.tensor([0, 0, 2])
    packed_info = ops.packed_info_from_counts(torch.tensor([2, 0, 1]))
    return sigmas, rgbs, t_starts, t_ends, ray_indices, packed_info


def test_packed_info_from_counts() -> None:
    assert ops.packed_info_from_counts(torch.tensor([2, 0, 1, 3])).tolist() == [[0, 2], [2, 0], [2, 1], [3, 3]]
    assert ops.packed_info_from_counts(torch.zeros(0, dtype=torch.long)).shape == (0, 2)


def test_render_transmittance_by_hand() -> None:
    sigmas, _, t_starts, t_ends, ray_indices, packed_info = two_ray_example()
    transmittance, alphas = ops.render_transmittance(sigmas, t_starts, t_ends, packed_info, ray_indices)
    # optical thickness sigma * delta: 0.5, 0.5 (ray 0), 0.3 (ray 2)
    torch.testing.assert_close(transmittance, torch.tensor([1.0, math.exp(-0.5), 1.0]))
    torch.testing.assert_close(alphas, torch.tensor([1 - math.exp(-0.5), 1 - math.exp(-0.5), 1 - math.exp(-0.3)]))


def test_composite_by_hand() -> None:
    sigmas, rgbs, t_starts, t_ends, ray_indices, packed_info = two_ray_example()
    rgb, opacity, depth, weights = ops.composite(sigmas, rgbs, t_starts, t_ends, ray_indices, packed_info)
    a = 1 - math.exp(-0.5)
    w0, w1, w2 = a, math.exp(-0.5) * a, 1 - math.exp(-0.3)
    torch.testing.assert_close(weights, torch.tensor([w0, w1, w2]))
    torch.testing.assert_close(opacity, torch.tensor([w0 + w1, 0.0, w2]))
    torch.testing.assert_close(rgb, torch.tensor([[w0, w1, 0.5 * w1], [0.0, 0.0, 0.0], [0.2 * w2, 0.4 * w2, 0.6 * w2]]))
    torch.testing.assert_close(depth, torch.tensor([0.25 * w0 + 0.625 * w1, 0.0, 1.05 * w2]))


def test_composite_rays_without_samples() -> None:
    packed_info = ops.packed_info_from_counts(torch.zeros(4, dtype=torch.long))
    empty = torch.zeros(0)
    rgb, opacity, depth, weights = ops.composite(empty, torch.zeros(0, 3), empty, empty, torch.zeros(0, dtype=torch.long), packed_info)
    assert torch.equal(rgb, torch.zeros(4, 3)) and torch.equal(opacity, torch.zeros(4)) and torch.equal(depth, torch.zeros(4))
    assert weights.shape == (0,)


def test_composite_opaque_sample_hides_the_rest() -> None:
    sigmas = torch.tensor([1e4, 5.0, 5.0])
    t_starts = torch.tensor([0.0, 0.1, 0.2])
    rgbs = torch.tensor([[0.1, 0.2, 0.3], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    rgb, opacity, depth, weights = ops.composite(
        sigmas, rgbs, t_starts, t_starts + 0.1, torch.zeros(3, dtype=torch.long), ops.packed_info_from_counts(torch.tensor([3]))
    )
    torch.testing.assert_close(opacity, torch.ones(1))
    torch.testing.assert_close(rgb, torch.tensor([[0.1, 0.2, 0.3]]))
    torch.testing.assert_close(depth, torch.tensor([0.05]))


def test_composite_gradcheck() -> None:
    sigmas, rgbs, t_starts, t_ends, ray_indices, packed_info = two_ray_example(torch.float64)
    # one more ray with three samples so cross-sample terms appear in the Jacobian
    sigmas = torch.cat([sigmas, torch.tensor([0.7, 1.9, 0.4], dtype=torch.float64)]).requires_grad_()
    rgbs = torch.cat([rgbs, torch.rand(3, 3, dtype=torch.float64)]).requires_grad_()
    t_starts = torch.cat([t_starts, torch.tensor([0.0, 0.2, 0.5], dtype=torch.float64)])
    t_ends = torch.cat([t_ends, torch.tensor([0.2, 0.5, 0.6], dtype=torch.float64)])
    ray_indices = torch.cat([ray_indices, torch.full((3,), 3)])
    packed_info = ops.packed_info_from_counts(torch.tensor([2, 0, 1, 3]))

    def fn(s, c):
        return ops.composite(s, c, t_starts, t_ends, ray_indices, packed_info)

    assert torch.autograd.gradcheck(fn, (sigmas, rgbs), eps=1e-6, atol=1e-6)

    def transmittance(s):
        return ops.render_transmittance(s, t_starts, t_ends, packed_info, ray_indices)

    assert torch.autograd.gradcheck(transmittance, (sigmas,), eps=1e-6, atol=1e-6)


# --- occupancy update --------------------------------------------------------------------------


def test_update_occupancy_ema_max() -> None:
    ema = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.0])
    out = ops.update_occupancy(ema, torch.tensor([0, 2, 4]), torch.tensor([0.5, 5.0, 0.25]), 0.9)
    assert out is ema  # in place
    # evaluated cells: max(0.9 * old, new); the others untouched
    torch.testing.assert_close(ema, torch.tensor([0.9, 2.0, 5.0, 4.0, 0.25]))
    ops.update_occupancy(ema, torch.tensor([2]), torch.tensor([0.0]), 0.5)
    torch.testing.assert_close(ema, torch.tensor([0.9, 2.0, 2.5, 4.0, 0.25]))
