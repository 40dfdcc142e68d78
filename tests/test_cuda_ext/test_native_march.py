"""The native marching kernel against the pure-torch reference (C++ here; CUDA with a GPU)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import MARCH_BOX as BOX
from conftest import make_march_rays as make_rays
from conftest import requires_cuda

from cuda_ext import ray_aabb_intersect, reference, status
from cuda_ext._backend import native
from cuda_ext.ops import march_rays

DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]


@pytest.fixture(autouse=True, scope="module")
def _native_built() -> None:
    if native() is None:
        pytest.fail(f"the native extension did not build: {status()['error']}")


def assert_same_march(rays_o, rays_d, occupied, step, jitter=None, near=0.0, cone_angle=0.0, max_step=float("inf")) -> int:
    aabb = BOX.to(rays_o.device)
    t_min, t_max, _ = ray_aabb_intersect(rays_o, rays_d, aabb, near)
    expected = reference.march_rays(rays_o, rays_d, t_min, t_max, occupied, aabb, step, jitter, cone_angle, max_step)
    got = march_rays(rays_o, rays_d, t_min, t_max, occupied, aabb, step, jitter, cone_angle, max_step)
    for name, want, have in zip(("ray_indices", "t_starts", "t_ends", "packed_info"), expected, got):
        assert have.dtype == want.dtype and have.shape == want.shape, name
        torch.testing.assert_close(have, want, rtol=0, atol=1e-6, msg=name)
    return int(expected[0].numel())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("occupancy", [0.0, 0.05, 0.5, 1.0])
def test_march_matches_reference(device: str, occupancy: float) -> None:
    g = torch.Generator().manual_seed(7)
    rays_o, rays_d = make_rays(500, seed=1, device=device, inside=40, axis_parallel=40)
    occupied = (torch.rand(17, 9, 23, generator=g) < occupancy).to(device)
    jitter = torch.rand(500, generator=g).to(device)
    samples = assert_same_march(rays_o, rays_d, occupied, 0.013, jitter)
    assert (samples == 0) == (occupancy == 0.0)


@pytest.mark.parametrize("device", DEVICES)
def test_march_edge_cases(device: str) -> None:
    rays_o, rays_d = make_rays(64, seed=2, device=device)
    full = torch.ones(4, 4, 4, dtype=torch.bool, device=device)
    assert_same_march(rays_o, rays_d, full, 5.0)  # one-sample (or no-sample) rays
    assert_same_march(rays_o, rays_d, torch.ones(1, 1, 1, dtype=torch.bool, device=device), 0.05)  # resolution 1
    missing = rays_o + 10.0  # every ray misses
    assert assert_same_march(missing, rays_d, full, 0.05) == 0
    empty = torch.zeros(0, 3, device=device)
    got = march_rays(empty, empty, empty[:, 0], empty[:, 0], full, BOX.to(device), 0.1)
    assert [t.shape[0] for t in got] == [0, 0, 0, 0]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("max_step", [0.05, float("inf")])
def test_cone_stepping_matches_reference_and_grows_with_distance(device: str, max_step: float) -> None:
    g = torch.Generator().manual_seed(8)
    rays_o, rays_d = make_rays(300, seed=9, device=device, inside=30, axis_parallel=30)
    occupied = (torch.rand(16, 16, 16, generator=g) < 0.6).to(device)
    jitter = torch.rand(300, generator=g).to(device)
    assert assert_same_march(rays_o, rays_d, occupied, 0.01, jitter, cone_angle=0.01, max_step=max_step) > 0
    aabb = BOX.to(device)
    t_min, t_max, _ = ray_aabb_intersect(rays_o, rays_d, aabb)
    _, t_starts, t_ends, _ = march_rays(rays_o, rays_d, t_min, t_max, occupied, aabb, 0.01, jitter, 0.01, max_step)
    steps = t_ends - t_starts
    expected = torch.clamp(torch.clamp(t_starts * 0.01, min=0.01), max=max_step)
    torch.testing.assert_close(steps, expected, rtol=1e-5, atol=1e-6)
    assert steps.max() > 0.02  # rays from about 3 units away take longer steps than the minimum


def test_march_thin_occupied_structures_are_not_skipped() -> None:
    """Single occupied cells scattered in empty space (the DDA jump must not step over them)."""
    g = torch.Generator().manual_seed(3)
    occupied = torch.zeros(64, 64, 64, dtype=torch.bool)
    occupied.view(-1)[torch.randint(0, 64**3, (400,), generator=g)] = True
    rays_o, rays_d = make_rays(4000, seed=4, device="cpu", axis_parallel=500)
    assert assert_same_march(rays_o, rays_d, occupied, 0.004, torch.rand(4000, generator=g)) > 0


@pytest.mark.parametrize(
    "change, error, needle",
    [
        (lambda a: {**a, "rays_o": a["rays_o"].double()}, TypeError, "rays_o must be torch.float32"),
        (lambda a: {**a, "rays_d": a["rays_d"][:, :2]}, ValueError, "rays_d must have shape [8, 3]"),
        (lambda a: {**a, "t_min": a["t_min"][:5]}, ValueError, "t_min must have shape [8]"),
        (lambda a: {**a, "occupied": a["occupied"].float()}, TypeError, "occupied must be torch.bool"),
        (lambda a: {**a, "rays_o": a["rays_o"].t().contiguous().t()}, ValueError, "rays_o must be contiguous"),
        (lambda a: {**a, "jitter": a["jitter"].long()}, TypeError, "jitter must be torch.float32"),
        (lambda a: {**a, "step_size": 0.0}, ValueError, "step_size must be positive"),
        (lambda a: {**a, "cone_angle": -0.1}, ValueError, "cone_angle must be >= 0"),
        (lambda a: {**a, "max_step": 0.01}, ValueError, r"max_step \(0.01\) must be >= step_size"),
        (lambda a: {**a, "aabb": a["aabb"][0]}, ValueError, "aabb must have shape [2, 3]"),
        (lambda a: {**a, "t_max": [1.0] * 8}, TypeError, "t_max must be a torch.Tensor"),
    ],
)
def test_march_rejects_bad_arguments(change, error, needle: str) -> None:
    rays_o, rays_d = make_rays(8, seed=5, device="cpu")
    args = dict(
        rays_o=rays_o, rays_d=rays_d, t_min=torch.zeros(8), t_max=torch.ones(8),
        occupied=torch.ones(2, 2, 2, dtype=torch.bool), aabb=BOX, step_size=0.1, jitter=torch.zeros(8),
    )  # fmt: skip
    with pytest.raises(error, match=needle.replace("[", r"\[").replace("]", r"\]")):
        march_rays(**change(args))


def test_status_reports_native_cpu_build() -> None:
    report = status()
    assert report["native"] and not report["forced_reference"] and report["error"] is None
    if not torch.cuda.is_available():
        assert not report["cuda"]


def test_environment_variable_forces_reference_and_imports_load_no_native_code() -> None:
    code = (
        "import sys, fields, render, apps.cli, apps.training, cuda_ext\n"
        "assert 'tensorfields_native' not in sys.modules, 'imports built or loaded the extension'\n"
        "print(cuda_ext.status())\n"
        "assert 'tensorfields_native' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, "TENSORFIELDS_REFERENCE": "1"}
    )
    assert result.returncode == 0, result.stderr
    assert "'forced_reference': True" in result.stdout and "'native': False" in result.stdout
