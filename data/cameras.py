"""Pinhole cameras in the OpenCV convention (x right, y down, z forward)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

__all__ = ["Cameras", "OPENGL_TO_OPENCV", "rotation_problem", "se3_exp"]

#: how far a pose's rotation block may be from a (uniformly scaled) rotation: the largest entry
#: of `R^T R / s^2 - I`, with `s^2` the mean squared column length
ROTATION_TOLERANCE = 1e-2

# Right-multiplying an OpenGL/Blender camera-to-world matrix by this flips y and z, giving the
# OpenCV camera-to-world matrix of the same camera.
OPENGL_TO_OPENCV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))


def rotation_problem(rotation: np.ndarray) -> str | None:
    """What is wrong with a camera-to-world rotation block, `[3, 3]`, or None when it is a
    rotation (a uniform scale is allowed, as some exporters write one; a reflection is not)."""
    gram = rotation.T @ rotation
    scale = np.trace(gram) / 3
    if not scale > 1e-12:
        return "its rotation is all zeros"
    if np.abs(gram / scale - np.eye(3)).max() > ROTATION_TOLERANCE:
        return "its rotation is not orthogonal (singular, or sheared)"
    if np.linalg.det(rotation) < 0:
        return "its rotation is a reflection (determinant < 0)"
    return None


def _hat(v: torch.Tensor) -> torch.Tensor:
    """Skew-symmetric matrices `[N, 3, 3]` of vectors `v [N, 3]` (hat(v) x = v cross x)."""
    zero = torch.zeros_like(v[:, 0])
    x, y, z = v.unbind(-1)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).view(-1, 3, 3)


def se3_exp(xi: torch.Tensor) -> torch.Tensor:
    """The exponential map of se(3): `xi [N, 6]` (omega: rotation vector, rho) -> rigid
    transforms `[N, 4, 4]` with R = exp(hat(omega)) (Rodrigues) and t = V rho, V the left
    Jacobian of SO(3). Series expansions near omega = 0 keep values and gradients finite."""
    omega, rho = xi[:, :3], xi[:, 3:]
    theta2 = (omega * omega).sum(-1)[:, None, None]
    small = theta2 < 1e-6
    safe2 = torch.where(small, torch.ones_like(theta2), theta2)
    theta = safe2.sqrt()
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / safe2)
    c = torch.where(small, 1.0 / 6.0 - theta2 / 120.0, (theta - torch.sin(theta)) / (safe2 * theta))
    w = _hat(omega)
    w2 = w @ w
    eye = torch.eye(3, dtype=xi.dtype, device=xi.device).expand_as(w)
    rotation = eye + a * w + b * w2
    translation = (eye + b * w + c * w2) @ rho[:, :, None]
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=xi.dtype, device=xi.device).expand(len(xi), 1, 4)
    return torch.cat([torch.cat([rotation, translation], dim=2), bottom], dim=1)


@dataclass
class Cameras:
    """A batch of pinhole cameras that share one image size.

    Attributes:
        c2w: OpenCV camera-to-world matrices, `[N, 4, 4]` float32.
        fx, fy, cx, cy: intrinsics in pixels, `[N]` float32 each (per-camera intrinsics allowed).
        width, height: image size in pixels, shared by all cameras.
        distortion: optional OpenCV radial/tangential coefficients (k1, k2, p1, p2), `[N, 4]`.
    """

    c2w: torch.Tensor
    fx: torch.Tensor
    fy: torch.Tensor
    cx: torch.Tensor
    cy: torch.Tensor
    width: int
    height: int
    distortion: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.c2w.ndim != 3 or self.c2w.shape[1:] != (4, 4):
            raise ValueError(f"Cameras.c2w must be [N, 4, 4], got {tuple(self.c2w.shape)}")
        n = self.c2w.shape[0]
        for name in ("fx", "fy", "cx", "cy"):
            value = torch.as_tensor(getattr(self, name), dtype=torch.float32)
            if value.ndim == 0:
                value = value.expand(n).clone()
            if value.shape != (n,):
                raise ValueError(f"Cameras.{name} must be [{n}] or a scalar, got {tuple(value.shape)}")
            setattr(self, name, value)
        self.c2w = self.c2w.float()

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __getitem__(self, index: torch.Tensor | slice | int) -> "Cameras":
        if isinstance(index, int):
            index = slice(index, index + 1)
        return replace(
            self,
            c2w=self.c2w[index],
            fx=self.fx[index],
            fy=self.fy[index],
            cx=self.cx[index],
            cy=self.cy[index],
            distortion=None if self.distortion is None else self.distortion[index],
        )

    @property
    def centers(self) -> torch.Tensor:
        """Camera centres in world space, `[N, 3]`."""
        return self.c2w[:, :3, 3]

    def scaled(self, factor: float) -> "Cameras":
        """The same cameras for images resized by `factor` (e.g. 0.25 for 4x downsampling).

        Pixel centres stay aligned: cx' = cx * factor for the convention of pixel centres at
        integer + 0.5 coordinates used throughout (see `render.rays`).
        """
        return replace(
            self,
            fx=self.fx * factor,
            fy=self.fy * factor,
            cx=self.cx * factor,
            cy=self.cy * factor,
            width=round(self.width * factor),
            height=round(self.height * factor),
        )

    def to(self, device: torch.device | str) -> "Cameras":
        return replace(
            self,
            c2w=self.c2w.to(device),
            fx=self.fx.to(device),
            fy=self.fy.to(device),
            cx=self.cx.to(device),
            cy=self.cy.to(device),
            distortion=None if self.distortion is None else self.distortion.to(device),
        )

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project world points into every camera.

        Args:
            points: world points, `[P, 3]`.
        Returns:
            pixels `[N, P, 2]` (x, y in pixel units, pixel centres at +0.5) and depths `[N, P]`.
        """
        w2c = torch.linalg.inv(self.c2w)
        cam = points[None] @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]
        z = cam[..., 2]
        x = cam[..., 0] / z * self.fx[:, None] + self.cx[:, None]
        y = cam[..., 1] / z * self.fy[:, None] + self.cy[:, None]
        return torch.stack([x, y], dim=-1), z
