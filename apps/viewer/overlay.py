"""The training cameras drawn into a rendered frame, as wireframe frusta (as nerfstudio's viewer
shows them): each camera's centre joined to the four corners of its image plane, and the image
outline, at a depth of `FRUSTUM_DEPTH` x the rig's radius; the selected one in another colour.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from data import Cameras

__all__ = ["FRUSTUM_DEPTH", "frustum_segments", "draw_frusta"]

#: a drawn frustum's depth, as a share of the distance from the cameras to what they look at
FRUSTUM_DEPTH = 0.12
#: near plane (world units along the view axis) that segments are clipped to before projecting
NEAR = 1e-3
#: colours (RGB) of the training cameras and of the selected one
COLOUR, SELECTED_COLOUR = (255, 140, 0), (0, 120, 255)


def frustum_segments(cameras: Cameras, depth: float) -> torch.Tensor:
    """World-space segments `[N, 8, 2, 3]` of every camera's frustum: centre to the four image
    corners at `depth` world units along the axis, then the four sides of that image outline."""
    corners_px = torch.tensor([[0.0, 0.0], [cameras.width, 0.0], [cameras.width, cameras.height], [0.0, cameras.height]])
    x = (corners_px[None, :, 0] - cameras.cx[:, None].cpu()) / cameras.fx[:, None].cpu()
    y = (corners_px[None, :, 1] - cameras.cy[:, None].cpu()) / cameras.fy[:, None].cpu()
    local = torch.stack([x, y, torch.ones_like(x)], dim=-1) * depth  # [N, 4, 3]
    c2w = cameras.c2w.cpu()
    corners = torch.einsum("nij,nkj->nki", c2w[:, :3, :3], local) + c2w[:, None, :3, 3]
    centres = c2w[:, None, :3, 3].expand(-1, 4, -1)
    rays = torch.stack([centres, corners], dim=2)  # [N, 4, 2, 3]
    outline = torch.stack([corners, corners.roll(-1, dims=1)], dim=2)
    return torch.cat([rays, outline], dim=1)


def draw_frusta(image: np.ndarray, view: Cameras, cameras: Cameras, depth: float, selected: int | None = None) -> np.ndarray:
    """`image` (uint8 `[H, W, 3]`, rendered by the one camera `view` at any resolution) with the
    frusta of `cameras` drawn over it (`frustum_segments` at `depth`); camera `selected` in
    `SELECTED_COLOUR`. Parts behind the view camera are clipped away."""
    height, width = image.shape[:2]
    segments = frustum_segments(cameras, depth)
    w2c = torch.linalg.inv(view.c2w[0].cpu())
    local = segments @ w2c[:3, :3].T + w2c[:3, 3]  # [N, 8, 2, 3] in the view camera's frame
    scale_x, scale_y = width / view.width, height / view.height
    fx, fy = float(view.fx[0]) * scale_x, float(view.fy[0]) * scale_y
    cx, cy = float(view.cx[0]) * scale_x, float(view.cy[0]) * scale_y
    canvas = Image.fromarray(image)
    pen = ImageDraw.Draw(canvas)
    line_width = max(1, round(width / 256))
    order = range(len(cameras)) if selected is None else [i for i in range(len(cameras)) if i != selected] + [selected]
    for index in order:
        colour = SELECTED_COLOUR if index == selected else COLOUR
        for start, end in local[index].tolist():
            clipped = _clip_to_near(np.array(start), np.array(end))
            if clipped is None:
                continue
            (x0, y0), (x1, y1) = ((fx * p[0] / p[2] + cx, fy * p[1] / p[2] + cy) for p in clipped)
            pen.line([(x0, y0), (x1, y1)], fill=colour, width=line_width)
    return np.asarray(canvas)


def _clip_to_near(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of segment `start`-`end` (camera frame, z forward) in front of `NEAR`; None if none."""
    if start[2] < NEAR and end[2] < NEAR:
        return None
    if start[2] < NEAR or end[2] < NEAR:
        t = (NEAR - start[2]) / (end[2] - start[2])
        cut = start + t * (end - start)
        start, end = (cut, end) if start[2] < NEAR else (start, cut)
    return start, end
