"""Ray generation from cameras, and the NDC warp for forward-facing scenes."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from data.cameras import Cameras

__all__ = ["NDC", "Rays", "camera_rays", "image_rays", "ndc_rays"]


@dataclass(frozen=True)
class NDC:
    """Normalized-device-coordinate warp of a forward-facing scene (LLFF): focal in pixels of an
    image of `width` x `height`, near plane at z = -near in world units."""

    focal: float
    width: int
    height: int
    near: float = 1.0


@dataclass
class Rays:
    """A batch of rays: origins `[R, 3]`, unit directions `[R, 3]` (also what the decoder sees
    as view direction), far `[R]`, the distance at which each ray ends (infinite for ordinary
    rays; the end of the NDC frustum for NDC rays), and code, the appearance code that colours
    each ray (`fields.appearance`): training-image indices `[R]` int64, codes `[R, E]`, or None
    for the mean code."""

    origins: torch.Tensor
    directions: torch.Tensor
    far: torch.Tensor
    code: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.origins.shape[0]

    def __getitem__(self, index: slice | torch.Tensor) -> "Rays":
        code = None if self.code is None else self.code[index]
        return Rays(self.origins[index], self.directions[index], self.far[index], code)


def camera_rays(
    cameras: Cameras,
    camera_indices: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    ndc: NDC | None = None,
    code: torch.Tensor | None = None,
) -> Rays:
    """Rays through pixel positions.

    Args:
        cameras: the cameras.
        camera_indices: `[R]` int64 index of each ray's camera.
        x, y: `[R]` pixel coordinates (pixel centres at integer + 0.5).
        ndc: warp the rays to NDC when given.
        code: the rays' appearance code (see `Rays.code`; None: the mean code).
    """
    fx, fy = cameras.fx[camera_indices], cameras.fy[camera_indices]
    cx, cy = cameras.cx[camera_indices], cameras.cy[camera_indices]
    local = torch.stack([(x - cx) / fx, (y - cy) / fy, torch.ones_like(x)], dim=-1)
    c2w = cameras.c2w[camera_indices]
    directions = torch.einsum("rij,rj->ri", c2w[:, :3, :3], local)
    origins = c2w[:, :3, 3].contiguous()
    if ndc is not None:
        return replace(ndc_rays(origins, directions, ndc), code=code)
    return Rays(origins, F.normalize(directions, dim=-1), torch.full_like(x, float("inf")), code)


def image_rays(cameras: Cameras, index: int, ndc: NDC | None = None) -> Rays:
    """All rays of one camera's image, row-major, `H * W` rays."""
    ys, xs = torch.meshgrid(
        torch.arange(cameras.height, dtype=torch.float32, device=cameras.c2w.device) + 0.5,
        torch.arange(cameras.width, dtype=torch.float32, device=cameras.c2w.device) + 0.5,
        indexing="ij",
    )
    camera_indices = torch.full((xs.numel(),), index, dtype=torch.long, device=xs.device)
    return camera_rays(cameras, camera_indices, xs.reshape(-1), ys.reshape(-1), ndc)


def ndc_rays(origins: torch.Tensor, directions: torch.Tensor, ndc: NDC) -> Rays:
    """Warp world rays of a forward-facing scene (looking down -z) into NDC, as NeRF/TensoRF do.

    Origins move to the near plane; the NDC ray spans parameter [0, 1] along the unnormalized
    NDC direction, so with unit directions it ends at `far = |d_ndc|`.

    Args:
        origins, directions: world rays `[R, 3]` (directions of any length).
    """
    t = -(ndc.near + origins[:, 2]) / directions[:, 2]
    o = origins + t[:, None] * directions
    sx = -2.0 * ndc.focal / ndc.width
    sy = -2.0 * ndc.focal / ndc.height
    o_ndc = torch.stack([sx * o[:, 0] / o[:, 2], sy * o[:, 1] / o[:, 2], 1.0 + 2.0 * ndc.near / o[:, 2]], dim=-1)
    d_ndc = torch.stack(
        [
            sx * (directions[:, 0] / directions[:, 2] - o[:, 0] / o[:, 2]),
            sy * (directions[:, 1] / directions[:, 2] - o[:, 1] / o[:, 2]),
            -2.0 * ndc.near / o[:, 2],
        ],
        dim=-1,
    )
    length = d_ndc.norm(dim=-1)
    return Rays(o_ndc, d_ndc / length[:, None], length)
