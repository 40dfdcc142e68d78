"""A pure-torch reference rasterizer of 3D Gaussian splats, drawn as 3D Gaussian Splatting
(Kerbl et al. 2023) and gsplat's `rasterization` (classic mode, default settings) draw them, to
check that an exported 3DGS `.ply` renders like the field it came from.

Conventions (N Gaussians, an H x W image):

- camera: `Cameras.c2w` is OpenCV camera-to-world (x right, y down, z forward); a camera-space
  point (x, y, z) lands at pixel (fx x / z + cx, fy y / z + cy), and pixel (i, j) (row, column)
  is sampled at its centre (j + 0.5, i + 0.5), as `render.rays.camera_rays` places rays and as
  gsplat samples. `Cameras.distortion` is ignored.
- Gaussians: means `[N, 3]`, linear standard deviations `scales [N, 3]` (world units),
  quaternions `quats [N, 4]` (w, x, y, z; normalized here), opacities `[N]` in [0, 1], and real
  SH coefficients `sh [N, K, 3]`, K = (degree + 1)^2 <= 16, `sh[:, 0]` the DC term (3DGS's layout).
- projection (EWA): Sigma = R S S^T R^T, view-space mean t, Sigma2D = J W Sigma W^T J^T + 0.3 I
  with J = [[fx/tz, 0, -fx tx/tz^2], [0, fy/tz, -fy ty/tz^2]]; as in 3DGS and gsplat, tx/tz and
  ty/tz in J (not in the projected mean) are clamped to the field of view widened by 30%.
- colour: the SH at the unit direction from the camera centre to the mean
  (`fields.decoders.sh_basis`), then `clamp_min(value + 0.5, 0)`.
- culling: view depth tz < 0.01 (near plane), a singular Sigma2D, opacity < 1/255, and
  Gaussians whose box misses the image; the box is gsplat's opacity-aware one, half-widths
  ceil(e sqrt(Sigma2D_xx)) and ceil(e sqrt(Sigma2D_yy)) with e = min(3.33, sqrt(2 ln(255 o)))
  (about 3 sigma), outside which alpha < 1/255, so culling never drops a contribution that
  compositing would keep.
- compositing, per pixel, front to back in order of tz (a stable sort): alpha_i =
  min(0.99, o_i exp(-0.5 d^T Sigma2D^-1 d)), d = projected mean - pixel centre, skipped when
  below 1/255; C = sum_i c_i alpha_i T_i, T_i = prod_{j<i} (1 - alpha_j); 3DGS's early stop: the
  first Gaussian that would bring T below 1e-4 is left out, and so are all behind it.
  rgb = C + T_final background, alpha = 1 - T_final, depth = sum_i alpha_i T_i tz_i (not
  normalized by alpha; gsplat's "D" render mode).

What differs from 3DGS and gsplat: the boxes are conservative and every pixel sees every
Gaussian whose box reaches its tile, so the tiles here only split the work and have no effect
on the image (3DGS evaluates a Gaussian on the whole 16 x 16 tiles that its 3 sqrt(lambda_max)
square touches and nowhere else, so its footprints can end at tile boundaries); 3DGS culls at
view depth 0.2, not 0.01 (gsplat's default); gsplat stops at T <= 1e-4 rather than < 1e-4, and
some gsplat versions cap alpha at 0.999 rather than 0.99; ties in depth keep the input order.

`rasterize_splats_gsplat` draws the same Gaussians with gsplat's `rasterization` under these
conventions (CUDA and gsplat needed, imported only when called), to check one against the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from data.cameras import Cameras
from fields.decoders import sh_basis
from fields.gaussians.field import quaternion_to_rotation

__all__ = ["rasterize_splats", "rasterize_splats_gsplat"]

#: 3DGS's thresholds: alphas below ALPHA_MIN are skipped, alphas are capped at ALPHA_MAX, and
#: compositing stops before transmittance would fall below T_MIN
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
T_MIN = 1e-4
#: view depth below which a Gaussian is culled, and the low-pass dilation of the 2D covariance
NEAR_PLANE = 0.01
EPS2D = 0.3
#: how far past the image edge (a fraction of its half field of view) J keeps following tx / tz
FOV_MARGIN = 0.3
#: the cap of the box's extent in standard deviations (gsplat's)
MAX_EXTEND = 3.33


@dataclass
class _Splats:
    """Projected Gaussians that survived culling, front to back: means2d `[M, 2]` (pixels),
    conics `[M, 3]` (a, b, c of Sigma2D^-1 = [[a, b], [b, c]]), opacities `[M]`, colours
    `[M, 3]`, depths `[M]` (view tz) and radii `[M, 2]` (the box's half-widths in x, y)."""

    means2d: torch.Tensor
    conics: torch.Tensor
    opacities: torch.Tensor
    colours: torch.Tensor
    depths: torch.Tensor
    radii: torch.Tensor

    def __getitem__(self, index: torch.Tensor | slice) -> "_Splats":
        return _Splats(self.means2d[index], self.conics[index], self.opacities[index], self.colours[index], self.depths[index], self.radii[index])


def _covariance_2d(
    view_means: torch.Tensor, view_cov: torch.Tensor, intrinsics: tuple[float, float, float, float], width: int, height: int
) -> torch.Tensor:
    """EWA screen-space covariances `[N, 2, 2]` (with the dilation) of view-space means `[N, 3]`
    and covariances `[N, 3, 3]` for a camera of `intrinsics` (fx, fy, cx, cy) and image size,
    with 3DGS's clamp of tx / tz, ty / tz in the Jacobian."""
    fx, fy, cx, cy = intrinsics
    margin_x, margin_y = FOV_MARGIN * 0.5 * width / fx, FOV_MARGIN * 0.5 * height / fy
    tx, ty, tz = view_means.unbind(-1)
    tx = tz * (tx / tz).clamp(-cx / fx - margin_x, (width - cx) / fx + margin_x)
    ty = tz * (ty / tz).clamp(-cy / fy - margin_y, (height - cy) / fy + margin_y)
    zero = torch.zeros_like(tz)
    jacobian = torch.stack([fx / tz, zero, -fx * tx / tz**2, zero, fy / tz, -fy * ty / tz**2], dim=-1).view(-1, 2, 3)
    cov2d = jacobian @ view_cov @ jacobian.transpose(1, 2)
    return cov2d + EPS2D * torch.eye(2, dtype=cov2d.dtype, device=cov2d.device)


def _sh_degree(sh: torch.Tensor) -> int:
    """The SH degree of coefficients `[N, K, 3]`, K = (degree + 1)^2 <= 16."""
    degree = math.isqrt(sh.shape[1]) - 1
    if (degree + 1) ** 2 != sh.shape[1] or not 0 <= degree <= 3:
        raise ValueError(f"sh must hold (degree + 1)^2 <= 16 coefficients per channel, got {sh.shape[1]}")
    return degree


def _colours(means: torch.Tensor, sh: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """3DGS colours `[N, 3]` of SH coefficients `[N, K, 3]` seen from the camera `centre [3]`."""
    degree = _sh_degree(sh)
    basis = sh_basis(F.normalize(means - centre, dim=-1), degree)  # [N, K]
    return ((basis[:, :, None] * sh).sum(1) + 0.5).clamp_min(0.0)


def _project(
    means: torch.Tensor, scales: torch.Tensor, quats: torch.Tensor, opacities: torch.Tensor, sh: torch.Tensor, cameras: Cameras, index: int
) -> _Splats:
    """Project, cull (see the module docstring) and depth-sort the Gaussians for one camera."""
    c2w = cameras.c2w[index].to(means)
    w2c = torch.linalg.inv(c2w)
    view_means = means @ w2c[:3, :3].T + w2c[:3, 3]
    keep = (view_means[:, 2] >= NEAR_PLANE) & (opacities >= ALPHA_MIN)
    view_means, means, scales, quats, opacities, sh = (v[keep] for v in (view_means, means, scales, quats, opacities, sh))

    intrinsics = (float(cameras.fx[index]), float(cameras.fy[index]), float(cameras.cx[index]), float(cameras.cy[index]))
    fx, fy, cx, cy = intrinsics
    view_rs = w2c[:3, :3] @ (quaternion_to_rotation(quats) * scales[:, None, :])  # W R S
    cov2d = _covariance_2d(view_means, view_rs @ view_rs.transpose(1, 2), intrinsics, cameras.width, cameras.height)
    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    det = a * c - b * b
    means2d = torch.stack([fx * view_means[:, 0] / view_means[:, 2] + cx, fy * view_means[:, 1] / view_means[:, 2] + cy], dim=-1)
    extend = torch.sqrt(2.0 * torch.log(opacities / ALPHA_MIN)).clamp_max(MAX_EXTEND)
    radii = torch.ceil(extend[:, None] * torch.stack([a, c], dim=-1).sqrt())
    size = torch.tensor([cameras.width, cameras.height], dtype=means.dtype, device=means.device)
    on_image = ((means2d + radii > 0) & (means2d - radii < size)).all(-1)
    keep = (det > 0) & (radii > 0).any(-1) & on_image

    conics = torch.stack([c, -b, a], dim=-1) / det[:, None]  # inf or NaN only where culled
    colours = _colours(means, sh, c2w[:3, 3])
    splats = _Splats(means2d, conics, opacities, colours, view_means[:, 2], radii)[keep]
    return splats[torch.sort(splats.depths, stable=True).indices]


def _alphas(splats: _Splats, pixels: torch.Tensor) -> torch.Tensor:
    """Alphas `[P, M]` of `splats` (M of them) at pixel centres `pixels [P, 2]`, 0 where skipped."""
    dx = splats.means2d[None, :, 0] - pixels[:, 0:1]
    dy = splats.means2d[None, :, 1] - pixels[:, 1:2]
    a, b, c = splats.conics.unbind(-1)
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = (splats.opacities * torch.exp(-sigma)).clamp_max(ALPHA_MAX)
    return torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))


def _composite(splats: _Splats, pixels: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Front-to-back compositing of depth-sorted `splats` at pixel centres `pixels [P, 2]`, in
    chunks of `chunk` Gaussians that carry transmittance and the stopped pixels between them.

    Returns colour `[P, 3]` (no background), final transmittance `[P]` and depth `[P]`.
    """
    count = pixels.shape[0]
    transmittance = pixels.new_ones(count)
    stopped = torch.zeros(count, dtype=torch.bool, device=pixels.device)
    colour, depth = pixels.new_zeros(count, 3), pixels.new_zeros(count)
    for start in range(0, len(splats.depths), chunk):
        if bool(stopped.all()):
            break
        part = splats[start : start + chunk]
        alpha = _alphas(part, pixels)  # [P, C]
        after = transmittance[:, None] * torch.cumprod(1.0 - alpha, dim=1)  # T after each Gaussian
        before = torch.cat([transmittance[:, None], after[:, :-1]], dim=1)
        # T only falls along a row, so the kept Gaussians are a prefix of the chunk
        kept = (after >= T_MIN) & ~stopped[:, None]
        weights = alpha * before * kept
        colour += weights @ part.colours
        depth += weights @ part.depths
        transmittance = torch.cat([transmittance[:, None], after], dim=1).gather(1, kept.sum(1, keepdim=True))[:, 0]
        stopped |= ~kept.all(1)
    return colour, transmittance, depth


def _tile_pixels(x0: int, y0: int, x1: int, y1: int, like: torch.Tensor) -> torch.Tensor:
    """Pixel centres `[P, 2]` (x, y) of the tile of columns x0..x1-1 and rows y0..y1-1, row-major."""
    ys, xs = torch.meshgrid(
        torch.arange(y0, y1, dtype=like.dtype, device=like.device) + 0.5,
        torch.arange(x0, x1, dtype=like.dtype, device=like.device) + 0.5,
        indexing="ij",
    )
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)


@torch.no_grad()
def rasterize_splats(
    means: torch.Tensor,
    scales: torch.Tensor,
    quats: torch.Tensor,
    opacities: torch.Tensor,
    sh: torch.Tensor,
    cameras: Cameras,
    index: int,
    background: tuple[float, float, float] | torch.Tensor = (0.0, 0.0, 0.0),
    *,
    chunk: int = 4096,
    tile_size: int = 8,
) -> dict[str, torch.Tensor]:
    """Render Gaussians as 3DGS splat viewers do (conventions in the module docstring).

    Args:
        means: centres `[N, 3]`, world units.
        scales: linear standard deviations `[N, 3]`, world units.
        quats: rotations `[N, 4]` (w, x, y, z), normalized here.
        opacities: `[N]` in [0, 1].
        sh: real SH coefficients `[N, K, 3]`, K = (degree + 1)^2 <= 16, `sh[:, 0]` the DC term.
        cameras, index: the camera to render.
        background: RGB behind the Gaussians, 3 floats.
        chunk: Gaussians composited at once per tile (a memory/speed trade; no effect on the image).
        tile_size: side of the square pixel tiles the work is split into (no effect on the image).
    Returns:
        "rgb" `[H, W, 3]`, "alpha" `[H, W]` (1 - final transmittance) and "depth" `[H, W]`
        (sum of alpha_i T_i tz_i), float32, on the device of `means`.
    """
    means, scales, quats, opacities, sh = (v.float() for v in (means, scales, quats, opacities, sh))
    splats = _project(means, scales, quats, opacities, sh, cameras, index)
    width, height = cameras.width, cameras.height
    rgb, transmittance, depth = means.new_zeros(height, width, 3), means.new_zeros(height, width), means.new_zeros(height, width)
    lower, upper = splats.means2d - splats.radii, splats.means2d + splats.radii
    for y0 in range(0, height, tile_size):
        for x0 in range(0, width, tile_size):
            x1, y1 = min(x0 + tile_size, width), min(y0 + tile_size, height)
            hits = (upper[:, 0] > x0) & (lower[:, 0] < x1) & (upper[:, 1] > y0) & (lower[:, 1] < y1)
            colour, tile_transmittance, tile_depth = _composite(splats[hits.nonzero()[:, 0]], _tile_pixels(x0, y0, x1, y1, means), chunk)
            shape = (y1 - y0, x1 - x0)
            rgb[y0:y1, x0:x1] = colour.view(*shape, 3)
            transmittance[y0:y1, x0:x1] = tile_transmittance.view(shape)
            depth[y0:y1, x0:x1] = tile_depth.view(shape)
    bg = torch.as_tensor(background, dtype=means.dtype, device=means.device)
    return {"rgb": rgb + transmittance[..., None] * bg, "alpha": 1.0 - transmittance, "depth": depth}


@torch.no_grad()
def rasterize_splats_gsplat(
    means: torch.Tensor,
    scales: torch.Tensor,
    quats: torch.Tensor,
    opacities: torch.Tensor,
    sh: torch.Tensor,
    cameras: Cameras,
    index: int,
    background: tuple[float, float, float] | torch.Tensor = (0.0, 0.0, 0.0),
) -> torch.Tensor:
    """The RGB `[H, W, 3]` that gsplat's `rasterization` draws of the Gaussians, to compare with
    `rasterize_splats(...)["rgb"]`: arguments as there (on a CUDA device), drawn in classic mode
    with this module's near plane and dilation and no radius clip; the world-to-camera matrix is
    the inverse of `Cameras.c2w` (both OpenCV) and K holds fx, fy, cx, cy. gsplat (`pip install
    gsplat`) is imported here; its CUDA code may compile on the first call.
    """
    import gsplat

    means, scales, quats, opacities, sh = (v.float().contiguous() for v in (means, scales, quats, opacities, sh))
    fx, fy, cx, cy = (float(v[index]) for v in (cameras.fx, cameras.fy, cameras.cx, cameras.cy))
    intrinsics = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], device=means.device)
    viewmat = torch.linalg.inv(cameras.c2w[index].to(means))
    bg = torch.as_tensor(background, dtype=torch.float32).to(means.device).reshape(1, 3)
    colours, _, _ = gsplat.rasterization(
        means, quats, scales, opacities, sh, viewmats=viewmat[None], Ks=intrinsics[None], width=cameras.width,
        height=cameras.height, sh_degree=_sh_degree(sh), near_plane=NEAR_PLANE, eps2d=EPS2D, radius_clip=0.0,
        packed=False, rasterize_mode="classic", render_mode="RGB", backgrounds=bg,
    )  # fmt: skip
    return colours[0]
