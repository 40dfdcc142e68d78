"""Cameras and frames of the viewer: an orbit camera around a run's training cameras, and the
RGB / depth / opacity images of one render.

The orbit is parametrized as a user explores an object: azimuth and elevation (degrees) about
the point the training cameras look at, distance from it (in units of the training cameras'
median distance, so 1.0 is where they stood), and the horizontal field of view (degrees). A
forward-facing capture's rig is bounded: its azimuth, elevation and distance stay near the
training cameras', so the camera moves within the capture's frustum instead of orbiting behind it.

A frame is rendered progressively (`progressive_frames`): a coarse one first, shown at once, then
the frame at the chosen width; every step is scaled up (nearest neighbour) to the final size, so
the picture keeps its size while it sharpens.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from data import Cameras
from fields.base import Slimmable
from render import Model
from render.paths import focus_point, look_at

from ..evaluate.views import normalized_depth

__all__ = [
    "RENDER_MODES",
    "COARSE_WIDTH",
    "OrbitRig",
    "orbit_rig",
    "orbit_camera",
    "render_frame",
    "progressive_widths",
    "progressive_frames",
    "upscale_nearest",
    "colourize",
    "turbo",
]

RENDER_MODES = ("RGB", "depth", "opacity")
#: width of the first, coarse frame after a camera change (1/64 of a 256-px frame's pixels)
COARSE_WIDTH = 32
#: the distance range of an object's orbit (x the training cameras' median distance)
ORBIT_DISTANCES = (0.3, 3.0)
#: a forward-facing rig's margin around its training cameras' azimuths and elevations: this
#: share of their spread, at least `BOUNDED_MARGIN_MIN` degrees; and its distance range
BOUNDED_MARGIN, BOUNDED_MARGIN_MIN, BOUNDED_DISTANCES = 0.5, 3.0, (0.8, 1.5)

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
    and mean `elevation` (degrees), their image aspect (height / width) and horizontal field of
    view (degrees); the ranges (degrees, and x `radius`) the camera may move in."""

    center: torch.Tensor
    up: torch.Tensor
    e1: torch.Tensor
    e2: torch.Tensor
    radius: float
    elevation: float
    aspect: float
    fov: float
    azimuth_range: tuple[float, float] = (-180.0, 180.0)
    elevation_range: tuple[float, float] = (-89.0, 89.0)
    distance_range: tuple[float, float] = ORBIT_DISTANCES

    @property
    def bounded(self) -> bool:
        """Whether the camera stays near the training cameras (a forward-facing capture)."""
        return self.azimuth_range[1] - self.azimuth_range[0] < 360.0


def orbit_rig(reference: Cameras, bounded: bool = False) -> OrbitRig:
    """The orbit of a run's training cameras (as `render.paths.orbit_path` turns); `bounded`
    (forward-facing captures) limits it to the training cameras' azimuths, elevations and
    distances with a margin (`BOUNDED_MARGIN`)."""
    c2w = reference.c2w.cpu()
    up = F.normalize(-c2w[:, :3, 1].mean(0), dim=0)
    center = focus_point(c2w)
    offsets = c2w[:, :3, 3] - center
    directions = F.normalize(offsets, dim=-1)
    elevations = torch.rad2deg(torch.asin((directions @ up).clamp(-1, 1)))
    e1 = F.normalize(offsets[0] - (offsets[0] @ up) * up, dim=0)
    e2 = torch.cross(up, e1, dim=0)
    fov = 2 * math.atan(reference.width / (2 * float(reference.fx[0])))
    rig = OrbitRig(
        center=center,
        up=up,
        e1=e1,
        e2=e2,
        radius=float(offsets.norm(dim=-1).median()),
        elevation=float(elevations.mean()),
        aspect=reference.height / reference.width,
        fov=math.degrees(fov),
    )
    if not bounded:
        return rig
    azimuths = torch.rad2deg(torch.atan2(directions @ e2, directions @ e1))
    return replace(
        rig,
        azimuth_range=_with_margin(float(azimuths.min()), float(azimuths.max()), -180.0, 180.0),
        elevation_range=_with_margin(float(elevations.min()), float(elevations.max()), -89.0, 89.0),
        distance_range=BOUNDED_DISTANCES,
    )


def _with_margin(low: float, high: float, floor: float, ceiling: float) -> tuple[float, float]:
    """[low, high] widened by `BOUNDED_MARGIN` of its span (at least `BOUNDED_MARGIN_MIN`), within [floor, ceiling]."""
    margin = max(BOUNDED_MARGIN * (high - low), BOUNDED_MARGIN_MIN)
    return max(low - margin, floor), min(high + margin, ceiling)


def orbit_camera(
    rig: OrbitRig, azimuth: float, elevation: float, distance: float, fov: float, width: int, target: torch.Tensor | None = None
) -> Cameras:
    """One camera at `azimuth`, `elevation` (degrees), `distance` x `rig.radius` from its look-at
    point (the rig's centre moved by `target [3]`, world units), horizontal field of view `fov`
    (degrees), `width` pixels wide with the rig's aspect."""
    azimuth, elevation = math.radians(azimuth), math.radians(elevation)
    pivot = rig.center if target is None else rig.center + target.to(rig.center)
    ring = math.cos(azimuth) * rig.e1 + math.sin(azimuth) * rig.e2
    position = pivot + distance * rig.radius * (math.cos(elevation) * ring + math.sin(elevation) * rig.up)
    height = max(1, round(width * rig.aspect))
    focal = width / (2 * math.tan(math.radians(fov) / 2))
    return Cameras(look_at(position[None], pivot, rig.up), focal, focal, width / 2, height / 2, width, height)


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


def progressive_widths(width: int, coarse_width: int = COARSE_WIDTH) -> list[int]:
    """Frame widths of a progressive render ending at `width`: `coarse_width` first when that
    is smaller, then `width`."""
    return [coarse_width, width] if width > coarse_width else [width]


def progressive_frames(
    model: Model,
    camera_at: Callable[[int], Cameras],
    width: int,
    mode: str,
    rank: int | None = None,
    coarse_width: int = COARSE_WIDTH,
) -> Iterator[tuple[np.ndarray, float, int]]:
    """The frames of a progressive render: for each of `progressive_widths(width, coarse_width)`,
    the frame of `camera_at(w)` scaled up to the final size (uint8 `[H, W, 3]`), the seconds it
    took, and `w`."""
    final = camera_at(width)
    for step in progressive_widths(width, coarse_width):
        image, seconds = render_frame(model, camera_at(step) if step != width else final, mode, rank)
        yield upscale_nearest(image, final.height, final.width), seconds, step


def upscale_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`image [h, w, C]` at `height` x `width` by nearest neighbour (itself when already that size)."""
    if image.shape[:2] == (height, width):
        return image
    rows = (np.arange(height) * image.shape[0]) // height
    columns = (np.arange(width) * image.shape[1]) // width
    return image[rows[:, None], columns[None, :]]


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
