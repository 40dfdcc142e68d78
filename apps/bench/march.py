"""`tensorfields bench march`: samples per second of marching + compositing, native vs reference.

Both paths run on the same rays and occupancy grid, alternating, in one process: rays from a
sphere of cameras at a ball of occupied cells (an object in a 128^3 grid, as a trained lego
scene looks), jittered fixed steps, packed compositing forward and backward. On a GPU, with
nerfacc installed, its `OccGridEstimator.sampling` + `volrend.rendering` run on the same input.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cuda_ext import composite, march_rays, ray_aabb_intersect, reference_forced, status

__all__ = ["add_arguments", "MarchProblem", "make_problem", "bench_march"]


@dataclass
class MarchProblem:
    """Rays, grid and step of one benchmark case.

    rays_o, rays_d: `[R, 3]`; occupied: `[G, G, G]` bool over `aabb [2, 3]`; step_size: float.
    """

    rays_o: torch.Tensor
    rays_d: torch.Tensor
    occupied: torch.Tensor
    aabb: torch.Tensor
    step_size: float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..commands import types

    parser.add_argument(
        "--rays", type=types.positive_int(1 << 24, "rays"), default=8192, help="rays per pass, at most 16,777,216 (default: 8192)"
    )
    parser.add_argument(
        "--resolution", type=types.whole(2, 512), default=128, help="occupancy grid cells per axis, 2 to 512 (default: 128)"
    )
    parser.add_argument("--repeats", type=types.positive_int(1000), default=5, help="timed passes per path, 1 to 1000 (default: 5)")
    parser.add_argument("--device", type=types.device, default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")

def make_problem(num_rays: int, resolution: int, device: torch.device, seed: int = 0) -> MarchProblem:
    """Rays from 4 units away aimed at a ball of radius 0.6 in the box [-1.5, 1.5]^3, whose
    cells (and a 2% sprinkle of floaters) are occupied; step = half a 300^3 voxel, as TensoRF."""
    g = torch.Generator().manual_seed(seed)
    aabb = torch.tensor([[-1.5] * 3, [1.5] * 3])
    origins = 4.0 * F.normalize(torch.randn(num_rays, 3, generator=g), dim=-1)
    directions = F.normalize(0.7 * torch.randn(num_rays, 3, generator=g) - origins, dim=-1)
    centres = (torch.stack(torch.meshgrid(*[torch.arange(resolution)] * 3, indexing="ij"), -1) + 0.5) / resolution * 3.0 - 1.5
    occupied = (centres.norm(dim=-1) < 0.6) | (torch.rand(resolution, resolution, resolution, generator=g) < 0.02)
    return MarchProblem(origins.to(device), directions.to(device), occupied.to(device), aabb.to(device), 3.0 / 300 * 0.5)


def _march_and_composite(problem: MarchProblem, generator: torch.Generator) -> int:
    """One training-like pass: intersect, march with jitter, composite forward and backward.
    Densities and colours are fixed functions of the sample position. Returns the sample count."""
    rays_o, rays_d = problem.rays_o, problem.rays_d
    t_min, t_max, _ = ray_aabb_intersect(rays_o, rays_d, problem.aabb)
    jitter = torch.rand(rays_o.shape[0], generator=generator, device=rays_o.device)
    ray_indices, t_starts, t_ends, packed_info = march_rays(
        rays_o, rays_d, t_min, t_max, problem.occupied, problem.aabb, problem.step_size, jitter
    )
    sigmas, rgbs = _sample_values(rays_o, rays_d, ray_indices, t_starts, t_ends)
    rgb, opacity, depth, _ = composite(sigmas, rgbs, t_starts, t_ends, ray_indices, packed_info)
    (rgb.sum() + opacity.sum() + 1e-3 * depth.sum()).backward()
    return int(ray_indices.numel())


def _sample_values(
    rays_o: torch.Tensor, rays_d: torch.Tensor, ray_indices: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Leaf densities `[S]` and colours `[S, 3]` that need gradients, from the sample positions."""
    mid = 0.5 * (t_starts + t_ends)
    points = rays_o[ray_indices] + rays_d[ray_indices] * mid[:, None]
    sigmas = (20.0 * (0.6 - points.norm(dim=-1)).clamp(min=0.0)).requires_grad_()
    rgbs = (0.5 + 0.5 * torch.sin(3.0 * points)).requires_grad_()
    return sigmas, rgbs


def _timed(run: Callable[[], int], device: torch.device) -> tuple[float, int]:
    """Seconds of one call of `run` (synchronized on a GPU) and the samples it processed."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    samples = run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, samples


def _nerfacc_runner(problem: MarchProblem) -> Callable[[], int] | None:
    """nerfacc on the same rays and grid (GPU only), or None where it cannot run."""
    if problem.rays_o.device.type != "cuda":
        return None
    try:
        import nerfacc
    except ImportError:
        return None
    estimator = nerfacc.OccGridEstimator(roi_aabb=problem.aabb.flatten(), resolution=list(problem.occupied.shape), levels=1)
    estimator = estimator.to(problem.rays_o.device)
    estimator.binaries.copy_(problem.occupied[None])

    def run() -> int:
        ray_indices, t_starts, t_ends = estimator.sampling(
            problem.rays_o, problem.rays_d, render_step_size=problem.step_size, stratified=True
        )
        values: dict[str, torch.Tensor] = {}

        def rgb_sigma_fn(starts: torch.Tensor, ends: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            sigmas, rgbs = _sample_values(problem.rays_o, problem.rays_d, indices, starts, ends)
            values.update(sigmas=sigmas, rgbs=rgbs)
            return rgbs, sigmas

        rgb, opacity, depth, _ = nerfacc.volrend.rendering(
            t_starts, t_ends, ray_indices, n_rays=problem.rays_o.shape[0], rgb_sigma_fn=rgb_sigma_fn
        )
        (rgb.sum() + opacity.sum() + 1e-3 * depth.sum()).backward()
        return int(ray_indices.numel())

    return run


def bench_march(args: argparse.Namespace) -> dict[str, Any]:
    """Median samples/s of native and reference marching + compositing over `args.repeats`
    alternating runs (after one warm-up each), and of nerfacc where it runs."""
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    problem = make_problem(args.rays, args.resolution, device)
    generator = torch.Generator(device=device).manual_seed(0)
    native_status = status()
    if not native_status["native"]:
        raise ValueError(f"the native extension is not available ({native_status['error']}); nothing to compare")
    runners: dict[str, Callable[[], int]] = {}
    for name, forced in (("native", False), ("reference", True)):

        def run(forced: bool = forced) -> int:
            with reference_forced(forced):
                return _march_and_composite(problem, generator)

        runners[name] = run
    nerfacc_run = _nerfacc_runner(problem)
    if nerfacc_run is not None:
        runners["nerfacc"] = nerfacc_run
    rates: dict[str, list[float]] = {name: [] for name in runners}
    samples: dict[str, int] = {}
    for repeat in range(args.repeats + 1):
        for name, run in runners.items():
            seconds, count = _timed(run, device)
            if repeat > 0:  # the first round warms up (allocations, lazy builds)
                rates[name].append(count / seconds)
            samples[name] = count
    per_s = {name: statistics.median(values) for name, values in rates.items()}
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "rays": args.rays,
        "grid_resolution": args.resolution,
        "samples_per_pass": samples["native"],
        "native_samples_per_s": round(per_s["native"]),
        "reference_samples_per_s": round(per_s["reference"]),
        "speedup": round(per_s["native"] / per_s["reference"], 2),
    }
    if "nerfacc" in per_s:
        result["nerfacc_samples_per_s"] = round(per_s["nerfacc"])
        result["native_vs_nerfacc"] = round(per_s["native"] / per_s["nerfacc"], 2)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result
