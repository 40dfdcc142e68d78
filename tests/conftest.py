"""Shared fixtures, skip markers and test helpers (the only place they are defined)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
LEGO = SHARED_DATA / "lego"
FERN = SHARED_DATA / "fern"

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
requires_lego = pytest.mark.skipif(not LEGO.is_dir(), reason=f"reference scene missing: {LEGO}")
requires_fern = pytest.mark.skipif(not FERN.is_dir(), reason=f"reference scene missing: {FERN}")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def write_sphere_scene(folder: Path, views: int = 12, width: int = 40, height: int = 30, radius: float = 0.5) -> Path:
    """A nerfstudio `transforms.json` scene: a shaded sphere at the origin (RGBA, transparent
    around it, so it trains on white), seen from a ring of cameras (OpenGL poses, as the format
    stores them), drawn by exact ray casting."""
    import json

    import imageio.v3 as iio
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    focal = 0.9 * width
    frames = []
    for i in range(views):
        angle = 2 * np.pi * i / views
        eye = np.array([3.0 * np.cos(angle), 3.0 * np.sin(angle), 1.2 + 0.3 * np.sin(3 * angle)])
        forward = -eye / np.linalg.norm(eye)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        c2w = np.eye(4)
        c2w[:3, :3] = np.stack([right, up, -forward], axis=1)
        c2w[:3, 3] = eye
        cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
        dirs = ((cols - width / 2) / focal)[..., None] * right - ((rows - height / 2) / focal)[..., None] * up + forward
        dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
        b = dirs @ eye
        disc = b**2 - (eye @ eye - radius**2)
        hit = disc > 0
        t = -b - np.sqrt(np.clip(disc, 0, None))
        normal = (eye + t[..., None] * dirs) / radius
        shade = np.clip(0.35 + 0.65 * normal @ np.array([0.3, 0.4, 0.87]), 0, 1)
        colour = np.stack([0.9 * shade, 0.3 * shade + 0.2 * (normal[..., 2] > 0), 0.2 * shade], axis=-1)
        rgba = np.concatenate([np.where(hit[..., None], colour, 0.0), hit[..., None].astype(float)], axis=-1)
        iio.imwrite(folder / f"frame_{i:03d}.png", (rgba * 255 + 0.5).astype(np.uint8))
        frames.append({"file_path": f"frame_{i:03d}.png", "transform_matrix": c2w.tolist()})
    meta = {"fl_x": focal, "fl_y": focal, "cx": width / 2, "cy": height / 2, "w": width, "h": height}
    meta.update({"aabb": [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]], "frames": frames})
    (folder / "transforms.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="session")
def sphere_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a small synthetic transforms.json scene (see `write_sphere_scene`)."""
    return write_sphere_scene(tmp_path_factory.mktemp("sphere_scene"))


def brute_force_neighbors(
    points: torch.Tensor, centers: torch.Tensor, half_size: float, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Strivec's covering-tensor search by testing every tensor: of the cubes (`centers [T, 3]`,
    `half_size`) that cover a point (|x - c|_inf <= h), the `k` nearest (ties: lower index),
    inverse-distance weights (distance clamped at 1e-6 h) and local coordinates (x - c) / h.

    Returns index `[N, k]` int64 (-1 when empty), weights `[N, k]`, local `[N, k, 3]`, as
    `cuda_ext.trivec_neighbors` does for points inside its lookup grid.
    """
    n = points.shape[0]
    index = torch.full((n, k), -1, dtype=torch.int64)
    weights = torch.zeros(n, k, dtype=points.dtype)
    local = torch.zeros(n, k, 3, dtype=points.dtype)
    for p in range(n):
        diff = points[p] - centers  # [T, 3], in the points' dtype (the kernels' rounding)
        covered = (diff.abs() <= half_size).all(dim=-1).nonzero()[:, 0].tolist()
        dx, dy, dz = diff.unbind(-1)
        distance = torch.sqrt(dx * dx + dy * dy + dz * dz)
        nearest = sorted(covered, key=lambda t: (distance[t].item(), t))[:k]
        if not nearest:
            continue
        inverse = 1.0 / distance[nearest].double().clamp(min=1e-6 * half_size)
        index[p, : len(nearest)] = torch.tensor(nearest)
        weights[p, : len(nearest)] = (inverse / inverse.sum()).to(points.dtype)
        local[p, : len(nearest)] = diff[nearest] / half_size
    return index, weights, local


def assert_native_matches_reference(field: Any, x: torch.Tensor, d: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    """`field.query(x, d)` and its gradients w.r.t. the factors agree between the native kernels
    and the pure-torch reference (TENSORFIELDS_REFERENCE=1)."""
    sigma, rgb = field.query(x, d)
    (sigma.sum() + rgb.sum()).backward()
    native_grads = [p.grad.clone() for p in field.factor_parameters()]
    field.zero_grad()
    monkeypatch.setenv("TENSORFIELDS_REFERENCE", "1")
    sigma_ref, rgb_ref = field.query(x, d)
    (sigma_ref.sum() + rgb_ref.sum()).backward()
    torch.testing.assert_close(sigma, sigma_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rgb, rgb_ref, rtol=1e-5, atol=1e-5)
    for have, param in zip(native_grads, field.factor_parameters()):
        torch.testing.assert_close(have, param.grad, rtol=1e-5, atol=1e-4)
