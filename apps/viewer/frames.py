"""Cameras and frames of the viewer: an orbit camera around a run's training cameras, and the
RGB / depth / opacity images of one render.

The orbit is parametrized as a user explores an object: azimuth and elevation (degrees) about
the point the training cameras look at, distance from it (in units of the training cameras'
median distance, so 1.0 is where they stood), and the horizontal field of view (degrees).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from data import Cameras
from fields.base import Slimmable
from render import Model
from render.paths import focus_point, look_at

from ..evaluate.views import normalized_depth

__all__ = ["RENDER_MODES", "OrbitRig", "orbit_rig", "orbit_camera", "render_frame", "colourize", "turbo"]

RENDER_MODES = ("RGB", "depth", "opacity")

#: Google's polynomial fit of the turbo colormap (Mikhailov 2019), coefficients of t^0..t^5 per channel
_TURBO = np.array(
    [
        [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
        [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
        [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
    ]
)


@dataclass
class OrbitRig:
    """Where the orbit camera turns: `center [3]`, world `up [3]`, `e1 [3]` (azimuth 0) and
    `e2 [3]` (azimuth 90) spanning the horizontal plane, the training cameras' median `radius`
    and mean `elevation` (degrees), and their image aspect (height / width)."""

    center: torch.Tensor
    up: torch.Tensor
    e1: torch.Tensor
    e2: torch.Tensor
    radius: float
    elevation: float
    aspect: float
    fov: float


def orbit_rig(reference: Cameras) -> OrbitRig:
    """The orbit of a run's training cameras (as `render.paths.orbit_path` turns)."""
    c2w = reference.c2w.cpu()
    up = F.normalize(-c2w[:, :3, 1].mean(0), dim=0)
    center = focus_point(c2w)
    offsets = c2w[:, :3, 3] - center
    elevation = torch.asin((F.normalize(offsets, dim=-1) @ up).clamp(-1, 1)).mean()
    e1 = F.normalize(offsets[0] - (offsets[0] @ up) * up, dim=0)
    fov = 2 * math.atan(reference.width / (2 * float(reference.fx[0])))
    return OrbitRig(
        center=center,
        up=up,
        e1=e1,
        e2=torch.cross(up, e1, dim=0),
        radius=float(offsets.norm(dim=-1).median()),
        elevation=math.degrees(float(elevation)),
        aspect=reference.height / reference.width,
        fov=math.degrees(fov),
    )


def orbit_camera(rig: OrbitRig, azimuth: float, elevation: float, distance: float, fov: float, width: int) -> Cameras:
    """One camera at `azimuth`, `elevation` (degrees), `distance` x `rig.radius` from the centre,
    horizontal field of view `fov` (degrees), `width` pixels wide with the rig's aspect."""
    azimuth, elevation = math.radians(azimuth), math.radians(elevation)
    ring = math.cos(azimuth) * rig.e1 + math.sin(azimuth) * rig.e2
    position = rig.center + distance * rig.radius * (math.cos(elevation) * ring + math.sin(elevation) * rig.up)
    height = max(1, round(width * rig.aspect))
    focal = width / (2 * math.tan(math.radians(fov) / 2))
    return Cameras(look_at(position[None], rig.center, rig.up), focal, focal, width / 2, height / 2, width, height)


@torch.no_grad()
def render_frame(model: Model, camera: Cameras, mode: str, rank: int | None = None) -> tuple[np.ndarray, float]:
    """The `mode` image (`RENDER_MODES`) of a one-camera batch as uint8 `[H, W, 3]`, and the
    seconds it took; `rank` renders a `Slimmable` field at that rank."""
    if mode not in RENDER_MODES:
        raise ValueError(f"unknown render mode {mode!r}; use one of {', '.join(RENDER_MODES)}")
    if rank is not None and isinstance(model.field, Slimmable):
        model.field.set_active_rank(rank)
    started = time.perf_counter()
    output = model.render_image(camera.to(model.device), 0)
    seconds = time.perf_counter() - started
    return colourize(output, mode), seconds


def colourize(output: dict[str, torch.Tensor], mode: str) -> np.ndarray:
    """uint8 `[H, W, 3]` of a `render_image` output: RGB; expected depth (weighted distance over
    opacity) through the turbo colormap, near red to far blue, black where nothing is hit;
    or opacity as grey."""
    if mode == "RGB":
        image = output["rgb"].cpu().numpy()
    elif mode == "opacity":
        image = np.repeat(output["opacity"].cpu().numpy()[..., None], 3, axis=-1)
    else:
        image = _depth_image(output["depth"].cpu().numpy(), output["opacity"].cpu().numpy())
    return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _depth_image(depth: np.ndarray, opacity: np.ndarray) -> np.ndarray:
    """Turbo colours `[H, W, 3]` of the expected depth (`evaluate.normalized_depth`), black where empty."""
    normalized = normalized_depth({"depth": torch.from_numpy(depth), "opacity": torch.from_numpy(opacity)}).numpy()
    return turbo(normalized) * (opacity > 0.5)[..., None]


def turbo(values: np.ndarray) -> np.ndarray:
    """The turbo colormap of `values` in [0, 1] (clipped), any shape `[...]` -> `[..., 3]`."""
    t = np.clip(values, 0.0, 1.0)[..., None]
    powers = t ** np.arange(6)
    return np.clip(powers @ _TURBO.T, 0.0, 1.0)
