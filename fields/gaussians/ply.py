"""3D Gaussian Splatting `.ply` files: the standard layout that 3DGS, gsplat, nerfstudio's
splatfacto and the splat viewers read and write, as plain arrays (`Splats`).

One binary little-endian vertex element of float32 properties, in this order: `x, y, z`,
`nx, ny, nz` (zeros), `f_dc_0..2` (the degree-0 SH coefficient per channel), `f_rest_0..3(K-1)-1`
(the other coefficients, channel-major: all of red's, then green's, then blue's), `opacity` (a
logit), `scale_0..2` (natural logs of the standard deviations), `rot_0..3` (a quaternion w, x, y,
z, not necessarily normalized). K = (degree + 1)^2 SH coefficients per channel, degree 0 to 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["Splats", "SplatFileError", "write_splats", "read_splats", "ply_property_names"]


class SplatFileError(ValueError):
    """A file that is not a usable 3DGS `.ply`; the message names the file and the problem."""


@dataclass
class Splats:
    """Gaussians as 3DGS stores them (float32, on the CPU).

    means `[N, 3]`; scales `[N, 3]` (standard deviations, world units); quats `[N, 4]` (w, x, y, z,
    unit length); opacities `[N]` in (0, 1); sh `[N, K, 3]` (coefficient, channel; sh[:, 0] is DC).
    """

    means: torch.Tensor
    scales: torch.Tensor
    quats: torch.Tensor
    opacities: torch.Tensor
    sh: torch.Tensor

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return math.isqrt(self.sh.shape[1]) - 1


def ply_property_names(sh_coefficients: int) -> list[str]:
    """The vertex properties of a 3DGS file with `sh_coefficients` (K) coefficients per channel, in order."""
    rest = 3 * (sh_coefficients - 1)
    return (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(rest)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.double().clamp(1e-7, 1 - 1e-7)
    return torch.log(p) - torch.log1p(-p)


def write_splats(path: str | Path, splats: Splats) -> None:
    """Write `splats` as a binary 3DGS `.ply` at `path` (atomically: a temporary file, renamed)."""
    from plyfile import PlyData, PlyElement

    count, coefficients = len(splats), splats.sh.shape[1]
    sh = splats.sh.detach().cpu().float()
    columns = [
        splats.means.detach().cpu().float(),
        torch.zeros(count, 3),
        sh[:, 0, :],
        sh[:, 1:, :].transpose(1, 2).reshape(count, 3 * (coefficients - 1)),  # channel-major
        _logit(splats.opacities.detach().cpu()).float()[:, None],
        torch.log(splats.scales.detach().cpu().double()).float(),
        splats.quats.detach().cpu().float(),
    ]
    values = torch.cat(columns, dim=1).numpy()
    names = ply_property_names(coefficients)
    vertices = np.empty(count, dtype=[(name, "f4") for name in names])
    for i, name in enumerate(names):
        vertices[name] = values[:, i]
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    PlyData([PlyElement.describe(vertices, "vertex")], text=False).write(str(partial))
    partial.replace(path)


def read_splats(path: str | Path) -> Splats:
    """Read a 3DGS `.ply` (any SH degree 0 to 3); `SplatFileError` names the file and what is
    wrong: unreadable, no vertex element, missing properties, an SH count that is no degree,
    non-finite values."""
    from plyfile import PlyData

    path = Path(path)
    try:
        ply = PlyData.read(str(path))
    except FileNotFoundError:
        raise SplatFileError(f"{path}: no such file") from None
    except Exception as error:  # plyfile raises several kinds for a damaged or foreign file
        raise SplatFileError(f"{path}: not a readable .ply file ({type(error).__name__}: {error})") from None
    if "vertex" not in [element.name for element in ply.elements]:
        raise SplatFileError(f"{path}: has no vertex element, so it holds no Gaussians")
    vertex = ply["vertex"]
    present = {prop.name for prop in vertex.properties}
    rest = sorted((name for name in present if name.startswith("f_rest_")), key=lambda n: int(n[7:]) if n[7:].isdigit() else -1)
    coefficients = 1 + len(rest) // 3
    if len(rest) % 3 or coefficients not in (1, 4, 9, 16):
        raise SplatFileError(f"{path}: has {len(rest)} f_rest properties; 3DGS files have 0, 9, 24 or 45 (SH degree 0 to 3)")
    missing = [name for name in ply_property_names(coefficients) if name not in present and name not in ("nx", "ny", "nz")]
    if missing:
        kind = " (it looks like a mesh or point cloud, not Gaussian splats)" if "opacity" in missing and "scale_0" in missing else ""
        raise SplatFileError(f"{path}: is missing the 3DGS properties {', '.join(missing[:6])}{'...' if len(missing) > 6 else ''}{kind}")
    if vertex.count == 0:
        raise SplatFileError(f"{path}: holds no Gaussians (0 vertices)")

    def column(*names: str) -> torch.Tensor:
        if not names:
            return torch.zeros(vertex.count, 0)
        return torch.from_numpy(np.stack([np.asarray(vertex[name], dtype=np.float32) for name in names], axis=1))

    means = column("x", "y", "z")
    dc = column("f_dc_0", "f_dc_1", "f_dc_2")
    sh_rest = column(*[f"f_rest_{i}" for i in range(3 * (coefficients - 1))]).reshape(vertex.count, 3, coefficients - 1).transpose(1, 2)
    opacity_logits = column("opacity")[:, 0]
    log_scales = column("scale_0", "scale_1", "scale_2")
    quats = column("rot_0", "rot_1", "rot_2", "rot_3")
    for name, values in (("x, y, z", means), ("f_dc/f_rest", dc), ("f_rest", sh_rest), ("opacity", opacity_logits),
                         ("scale", log_scales), ("rot", quats)):  # fmt: skip
        bad = int((~torch.isfinite(values)).reshape(values.shape[0], -1).any(dim=1).sum())
        if bad:
            raise SplatFileError(f"{path}: {bad} of {vertex.count} Gaussians have non-finite {name} values")
    norms = quats.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise SplatFileError(f"{path}: {int((norms == 0).sum())} Gaussians have a zero rotation quaternion")
    return Splats(
        means=means,
        scales=torch.exp(log_scales.double().clamp(max=80.0)).float(),
        quats=quats / norms,
        opacities=torch.sigmoid(opacity_logits.double()).float(),
        sh=torch.cat([dc[:, None, :], sh_rest], dim=1),
    )
