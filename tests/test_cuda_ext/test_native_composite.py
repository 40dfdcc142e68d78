"""Native compositing, transmittance, ray/box intersection and occupancy update against the
pure-torch reference (C++ here; the CUDA parametrization runs with a GPU)."""

from __future__ import annotations

import pytest
import torch
from conftest import requires_cuda
from conftest import MARCH_BOX as BOX
from conftest import make_march_rays as make_rays

from cuda_ext import (
    composite,
    packed_info_from_counts,
    ray_aabb_intersect,
    reference,
    render_transmittance,
    status,
    update_occupancy,
)
from cuda_ext._backend import native

DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]


@pytest.fixture(autouse=True, scope="module")
def _native_built() -> None:
    if native() is None:
        pytest.fail(f"the native extension did not build: {status()['error']}")


def packed_samples(counts: list[int], dtype: torch.dtype, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random packed samples for rays with the given sample counts (zero-sample rays included)."""
    g = torch.Generator().manual_seed(seed)
    counts_t = torch.tensor(counts, dtype=torch.long)
    total = int(counts_t.sum())
    ray_indices = torch.repeat_interleave(torch.arange(len(counts)), counts_t)
    deltas = 0.01 + 0.05 * torch.rand(total, generator=g, dtype=torch.float64)
    t_starts = torch.rand(total, generator=g, dtype=torch.float64) + torch.cumsum(deltas, 0)  # any order is fine
    values = {
        "sigmas": 30.0 * torch.rand(total, generator=g, dtype=torch.float64) ** 2,
        "rgbs": torch.rand(total, 3, generator=g, dtype=torch.float64),
        "t_starts": t_starts,
        "t_ends": t_starts + deltas,
    }
    out = {k: v.to(device=device, dtype=dtype) for k, v in values.items()}
    out["ray_indices"] = ray_indices.to(device)
    out["packed_info"] = packed_info_from_counts(counts_t).to(device)
    return out


COUNTS = [0, 1, 5, 40, 0, 200, 3, 1, 0, 17]
ARGS = ("sigmas", "rgbs", "t_starts", "t_ends", "ray_indices", "packed_info")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("stop_eps", [0.0, 1e-2])
def test_composite_forward_and_gradients_match_reference(device: str, dtype: torch.dtype, tol: float, stop_eps: float) -> None:
    samples = packed_samples(COUNTS, dtype, device)
    results = {}
    for name, fn in (("native", composite), ("reference", reference.composite)):
        sigmas = samples["sigmas"].clone().requires_grad_()
        rgbs = samples["rgbs"].clone().requires_grad_()
        rgb, opacity, depth, weights = fn(sigmas, rgbs, *(samples[k] for k in ARGS[2:]), stop_eps=stop_eps)
        g = torch.Generator().manual_seed(1)
        upstream = [torch.randn(t.shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype) for t in (rgb, opacity, depth)]
        loss = sum((t * u).sum() for t, u in zip((rgb, opacity, depth), upstream))
        loss.backward()
        results[name] = (rgb, opacity, depth, weights.detach(), sigmas.grad, rgbs.grad)
    for label, got, want in zip(("rgb", "opacity", "depth", "weights", "grad sigmas", "grad rgbs"), results["native"], results["reference"]):
        torch.testing.assert_close(got, want, rtol=tol, atol=tol, msg=label)
    assert results["native"][0].shape == (len(COUNTS), 3)
    if stop_eps > 0:  # the 200-sample ray terminates early: its tail has no weight and no gradient
        tail = slice(samples["packed_info"][5, 0] + 150, samples["packed_info"][5, 0] + 200)
        assert (results["native"][3][tail] == 0).all() and (results["native"][4][tail] == 0).all()


def test_composite_gradcheck_float64() -> None:
    samples = packed_samples([3, 0, 1, 6], torch.float64, "cpu", seed=2)
    sigmas = samples["sigmas"].clone().requires_grad_()
    rgbs = samples["rgbs"].clone().requires_grad_()

    def outputs(s: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return composite(s, c, *(samples[k] for k in ARGS[2:]))[:3]

    assert torch.autograd.gradcheck(outputs, (sigmas, rgbs), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("device", DEVICES)
def test_transmittance_matches_reference(device: str) -> None:
    samples = packed_samples(COUNTS, torch.float32, device, seed=3)
    args = (samples["sigmas"], samples["t_starts"], samples["t_ends"], samples["packed_info"], samples["ray_indices"])
    for got, want in zip(render_transmittance(*args), reference.render_transmittance(*args)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_composite_of_no_samples_and_no_rays(device: str) -> None:
    samples = packed_samples([0, 0, 0], torch.float32, device)
    rgb, opacity, depth, weights = composite(*(samples[k] for k in ARGS))
    assert rgb.shape == (3, 3) and (rgb == 0).all() and (opacity == 0).all() and weights.shape == (0,)
    nothing = packed_samples([], torch.float32, device)
    assert composite(*(nothing[k] for k in ARGS))[0].shape == (0, 3)


@pytest.mark.parametrize(
    "change, error, needle",
    [
        (lambda a: {**a, "sigmas": a["sigmas"].long()}, TypeError, "sigmas must be a float32 or float64"),
        (lambda a: {**a, "rgbs": a["rgbs"][:, :2]}, ValueError, "rgbs must have shape"),
        (lambda a: {**a, "t_ends": a["t_ends"].double()}, TypeError, "t_ends must be torch.float32"),
        (lambda a: {**a, "rgbs": a["rgbs"].t().contiguous().t()}, ValueError, "rgbs must be contiguous"),
        (lambda a: {**a, "packed_info": a["packed_info"] + 1}, ValueError, "packed_info has .* outside the"),
        (lambda a: {**a, "packed_info": a["packed_info"].int()}, TypeError, "packed_info must be torch.int64"),
    ],
)
def test_composite_rejects_bad_arguments(change, error, needle: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENSORFIELDS_DEBUG", "1")  # the packed_info range is a value check
    samples = packed_samples([2, 3], torch.float32, "cpu")
    with pytest.raises(error, match=needle):
        composite(**change({k: samples[k] for k in ARGS}))


@pytest.mark.parametrize("device", DEVICES)
def test_ray_aabb_matches_reference(device: str) -> None:
    rays_o, rays_d = make_rays(400, seed=6, device=device, inside=50, axis_parallel=50)
    rays_o[-30:] += 10.0  # misses
    far = torch.rand(400, generator=torch.Generator().manual_seed(0)).to(device) * 4.0
    box = BOX.to(device)
    for near, far_arg in ((0.0, float("inf")), (0.7, far)):
        for got, want in zip(ray_aabb_intersect(rays_o, rays_d, box, near, far_arg), reference.ray_aabb_intersect(rays_o, rays_d, box, near, far_arg)):
            assert torch.equal(got, want)


@pytest.mark.parametrize("device", DEVICES)
def test_update_occupancy_matches_reference(device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(4)
    ema = torch.rand(1000, generator=g).to(device)
    cells = torch.randperm(1000, generator=g)[:300].to(device)
    new = (2.0 * torch.rand(300, generator=g)).to(device)
    want = reference.update_occupancy(ema.clone(), cells, new, 0.8)
    got = ema.clone()
    assert update_occupancy(got, cells, new, 0.8) is got
    assert torch.equal(got, want)
    monkeypatch.setenv("TENSORFIELDS_DEBUG", "1")  # the cell range is a value check
    with pytest.raises(ValueError, match=r"cell_indices must lie in \[0, 1000\)"):
        update_occupancy(got, cells + 900, new, 0.8)
