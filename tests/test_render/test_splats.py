"""The reference splat rasterizer: single Gaussians against closed forms, depth order, culling,
early stop, SH colour, the pixel convention of `camera_rays`, a brute-force per-pixel loop, and
gsplat (when it and a GPU are there)."""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_cuda, small_cameras

from data.cameras import Cameras
from fields.decoders import SH_C0, sh_basis
from render import camera_rays, rasterize_splats
from render.paths import look_at
from render.splats import rasterize_splats_gsplat

EPS2D = 0.3


def straight_camera(size: int = 21, focal: float = 30.0) -> Cameras:
    """A camera at the origin looking down +z, `size` x `size`, its principal point on a pixel centre."""
    centre = size / 2  # pixel (size // 2) has its centre at size / 2 for odd sizes
    return Cameras(c2w=torch.eye(4)[None], fx=focal, fy=focal, cx=centre, cy=centre, width=size, height=size)


def dc_for(colour: tuple[float, float, float]) -> torch.Tensor:
    """The DC coefficients `[3]` whose 3DGS colour is `colour`."""
    return (torch.tensor(colour) - 0.5) / SH_C0


def gaussians(means: list, scale: float | list, opacities: list, dc: torch.Tensor) -> dict[str, torch.Tensor]:
    """Isotropic, unrotated degree-0 Gaussians: `means` [N][3], opacities [N], dc `[N, 3]`."""
    n = len(means)
    scales = torch.as_tensor(scale, dtype=torch.float32).reshape(-1, 1).expand(n, 3)
    return dict(means=torch.tensor(means), scales=scales.clone(), quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                opacities=torch.tensor(opacities), sh=dc.reshape(n, 1, 3))  # fmt: skip


def test_single_gaussian_alpha_width_and_colour() -> None:
    cameras, z, s, opacity = straight_camera(), 3.0, 0.2, 0.7
    dc = torch.tensor([[0.3, -0.2, 0.9]])
    out = rasterize_splats(**gaussians([[0.0, 0.0, z]], s, [opacity], dc), cameras=cameras, index=0)
    variance = (30.0 * s / z) ** 2 + EPS2D  # in pixels^2, with the dilation
    row = out["alpha"][10]
    k = torch.arange(21.0) - 10
    expected = opacity * torch.exp(-0.5 * k**2 / variance)
    torch.testing.assert_close(row, torch.where(expected >= 1 / 255, expected, torch.zeros_like(expected)), rtol=1e-5, atol=1e-6)
    assert out["alpha"][10, 10].item() == pytest.approx(opacity, abs=1e-6)
    # the footprint's width: the variance read off the profile, less the dilation, is (f s / z)^2
    measured = -(3.0**2) / (2 * math.log(row[13].item() / opacity))
    assert math.sqrt(measured - EPS2D) == pytest.approx(30.0 * s / z, rel=1e-4)
    colour = SH_C0 * dc[0] + 0.5
    torch.testing.assert_close(out["rgb"], out["alpha"][..., None] * colour, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["depth"], out["alpha"] * z, rtol=1e-5, atol=1e-6)


def test_the_pixel_convention_is_camera_rays() -> None:
    cameras = small_cameras()
    x, y = torch.tensor([5.5]), torch.tensor([3.5])  # the centre of pixel (row 3, column 5)
    rays = camera_rays(cameras, torch.tensor([0]), x, y)
    mean = rays.origins + 2.0 * rays.directions
    out = rasterize_splats(**gaussians(mean.tolist(), 0.02, [0.8], torch.zeros(1, 3)), cameras=cameras, index=0)
    assert out["alpha"][3, 5].item() == pytest.approx(0.8, abs=1e-4)
    assert out["alpha"].argmax().item() == 3 * cameras.width + 5


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_the_nearer_of_two_opaque_gaussians_wins(order: list[int]) -> None:
    scene = gaussians([[0.0, 0.0, 2.0], [0.0, 0.0, 4.0]], [0.2, 0.4], [1.0, 0.9], torch.stack([dc_for((1, 0, 0)), dc_for((0, 1, 0))]))
    scene = {name: value[order] for name, value in scene.items()}
    out = rasterize_splats(**scene, cameras=straight_camera(), index=0)
    # alpha is capped at 0.99: the far Gaussian shows through by 1%
    torch.testing.assert_close(out["rgb"][10, 10], torch.tensor([0.99, 0.01 * 0.9, 0.0]), rtol=1e-5, atol=1e-6)
    assert out["depth"][10, 10].item() == pytest.approx(0.99 * 2.0 + 0.01 * 0.9 * 4.0, rel=1e-5)


@pytest.mark.parametrize("chunk", [1, 4096])
def test_compositing_stops_before_transmittance_falls_below_1e4(chunk: int) -> None:
    """T: 1 -> 0.01 -> 5e-4; the third would bring it to 2.5e-5, so it and everything behind it
    (even the faint fourth, which alone would keep T above 1e-4) are left out."""
    colours = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1)]
    means = [[0.0, 0.0, z] for z in (2.0, 3.0, 4.0, 5.0)]
    scene = gaussians(means, [0.2, 0.3, 0.4, 0.5], [0.99, 0.95, 0.95, 0.5], torch.stack([dc_for(c) for c in colours]))
    out = rasterize_splats(**scene, cameras=straight_camera(), index=0, background=(1.0, 1.0, 1.0), chunk=chunk)
    transmittance = 0.01 * 0.05
    torch.testing.assert_close(out["rgb"][10, 10], torch.tensor([0.99, 0.0095, 0.0]) + transmittance, rtol=1e-4, atol=1e-6)
    assert out["alpha"][10, 10].item() == pytest.approx(1 - transmittance, abs=1e-6)
    assert out["depth"][10, 10].item() == pytest.approx(0.99 * 2.0 + 0.0095 * 3.0, rel=1e-5)


def test_gaussians_behind_the_camera_or_nearer_than_the_near_plane_add_nothing() -> None:
    cameras, background = straight_camera(), (0.2, 0.4, 0.6)
    hidden = gaussians([[0.0, 0.0, -2.0], [0.0, 0.0, 0.005]], [0.5, 0.001], [1.0, 1.0], torch.ones(2, 3))
    out = rasterize_splats(**hidden, cameras=cameras, index=0, background=background)
    assert out["alpha"].abs().max().item() == 0 and out["depth"].abs().max().item() == 0
    assert torch.equal(out["rgb"], torch.tensor(background).expand(21, 21, 3))

    visible = gaussians([[0.0, 0.0, 3.0]], 0.05, [0.9], torch.ones(1, 3))
    alone = rasterize_splats(**visible, cameras=cameras, index=0, background=background)
    both = rasterize_splats(**{name: torch.cat([hidden[name], visible[name]]) for name in visible}, cameras=cameras, index=0, background=background)
    for name in ("rgb", "alpha", "depth"):
        assert torch.equal(both[name], alone[name])
    assert torch.equal(alone["rgb"][0, 0], torch.tensor(background))  # far from the Gaussian: the background


def test_a_degree_1_coefficient_colours_by_viewing_direction() -> None:
    positions = torch.tensor([[3.0, 0.0, 0.5], [0.0, -3.0, 1.0], [-2.0, 2.0, -1.0]])
    cameras = Cameras(c2w=look_at(positions, torch.zeros(3), torch.tensor([0.0, 0.0, 1.0])), fx=10.0, fy=10.0, cx=4.5, cy=4.5, width=9, height=9)
    sh = torch.zeros(1, 4, 3)
    sh[0, 0] = torch.tensor([0.2, 0.1, -0.1])
    sh[0, 1:] = torch.tensor([[0.3, -0.2, 0.1], [-0.25, 0.2, 0.3], [0.1, 0.35, -0.2]])
    scene = dict(means=torch.zeros(1, 3), scales=torch.full((1, 3), 0.1), quats=torch.tensor([[1.0, 0, 0, 0]]), opacities=torch.tensor([0.5]), sh=sh)
    seen = []
    for index in range(len(cameras)):
        out = rasterize_splats(**scene, cameras=cameras, index=index)
        seen.append(out["rgb"][4, 4] / out["alpha"][4, 4])
        direction = F.normalize(-positions[index : index + 1], dim=-1)  # from the camera to the mean
        expected = ((sh_basis(direction, 1)[0, :, None] * sh[0]).sum(0) + 0.5).clamp_min(0)
        torch.testing.assert_close(seen[-1], expected, rtol=1e-4, atol=1e-5)
    assert (seen[0] - seen[1]).abs().max() > 0.1 and (seen[1] - seen[2]).abs().max() > 0.1


# --- a brute-force per-pixel, per-Gaussian loop ------------------------------------------------


def rotate(q: list[float], v: torch.Tensor) -> torch.Tensor:
    """v `[3]` rotated by the unit quaternion q = (w, x, y, z): q v q*."""
    w, u = q[0], torch.tensor(q[1:], dtype=torch.float64)
    uv = torch.linalg.cross(u, v)
    return v + 2 * w * uv + 2 * torch.linalg.cross(u, uv)


def brute_force(scene: dict[str, torch.Tensor], cameras: Cameras, index: int, background: tuple) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """3DGS's rasterization, one Gaussian and one pixel at a time in float64; also counts the
    culled Gaussians, the skipped (alpha < 1/255) evaluations and the early-stopped pixels."""
    w2c = torch.linalg.inv(cameras.c2w[index].double())
    centre = cameras.c2w[index, :3, 3].double()
    fx, fy, cx, cy = (float(v[index]) for v in (cameras.fx, cameras.fy, cameras.cx, cameras.cy))
    width, height = cameras.width, cameras.height
    degree = math.isqrt(scene["sh"].shape[1]) - 1
    counts = {"culled": 0, "skipped": 0, "stopped": 0}
    splats = []
    for g in range(len(scene["means"])):
        mean, opacity = scene["means"][g].double(), float(scene["opacities"][g])
        t = w2c[:3, :3] @ mean + w2c[:3, 3]
        q = F.normalize(scene["quats"][g].double(), dim=0).tolist()
        rotation = torch.stack([rotate(q, e) for e in torch.eye(3, dtype=torch.float64)], dim=1)
        covariance = rotation @ torch.diag(scene["scales"][g].double() ** 2) @ rotation.T
        tx = t[2] * min(max(float(t[0] / t[2]), -cx / fx - 0.15 * width / fx), (width - cx) / fx + 0.15 * width / fx)
        ty = t[2] * min(max(float(t[1] / t[2]), -cy / fy - 0.15 * height / fy), (height - cy) / fy + 0.15 * height / fy)
        jacobian = torch.tensor([[fx / t[2], 0, -fx * tx / t[2] ** 2], [0, fy / t[2], -fy * ty / t[2] ** 2]], dtype=torch.float64)
        cov2d = jacobian @ w2c[:3, :3] @ covariance @ w2c[:3, :3].T @ jacobian.T + EPS2D * torch.eye(2, dtype=torch.float64)
        xy = torch.stack([fx * t[0] / t[2] + cx, fy * t[1] / t[2] + cy])
        extend = math.sqrt(2 * math.log(opacity * 255)) if opacity >= 1 / 255 else 0.0
        rx, ry = math.ceil(extend * math.sqrt(cov2d[0, 0])), math.ceil(extend * math.sqrt(cov2d[1, 1]))
        if t[2] < 0.01 or extend == 0 or xy[0] + rx <= 0 or xy[0] - rx >= width or xy[1] + ry <= 0 or xy[1] - ry >= height:
            counts["culled"] += 1
            continue
        basis = sh_basis(F.normalize(mean - centre, dim=0)[None], degree)[0]
        colour = ((basis[:, None] * scene["sh"][g].double()).sum(0) + 0.5).clamp_min(0)
        splats.append((float(t[2]), xy, torch.linalg.inv(cov2d), opacity, colour))
    splats.sort(key=lambda splat: splat[0])
    rgb, alpha, depth = torch.zeros(height, width, 3, dtype=torch.float64), torch.zeros(height, width, dtype=torch.float64), torch.zeros(height, width, dtype=torch.float64)
    for i in range(height):
        for j in range(width):
            pixel = torch.tensor([j + 0.5, i + 0.5], dtype=torch.float64)
            transmittance, colour_sum, depth_sum = 1.0, torch.zeros(3, dtype=torch.float64), 0.0
            for z, xy, conic, opacity, colour in splats:
                d = xy - pixel
                a = min(0.99, opacity * math.exp(-0.5 * float(d @ conic @ d)))
                if a < 1 / 255:
                    counts["skipped"] += 1
                    continue
                if transmittance * (1 - a) < 1e-4:
                    counts["stopped"] += 1
                    break
                colour_sum += colour * a * transmittance
                depth_sum += z * a * transmittance
                transmittance *= 1 - a
            rgb[i, j] = colour_sum + transmittance * torch.tensor(background, dtype=torch.float64)
            alpha[i, j], depth[i, j] = 1 - transmittance, depth_sum
    return {"rgb": rgb.float(), "alpha": alpha.float(), "depth": depth.float()}, counts


def brute_force_scene() -> tuple[dict[str, torch.Tensor], Cameras]:
    """7 rotated anisotropic degree-2 Gaussians before a rotated 6x5 camera: four large and
    nearly opaque ones around its target (so compositing stops early), one small, one behind
    the camera and one small one well off the image."""
    g = torch.Generator().manual_seed(5)
    cameras = Cameras(c2w=look_at(torch.tensor([[2.0, -2.5, 1.0]]), torch.zeros(3), torch.tensor([0.0, 0.0, 1.0])),
                      fx=7.0, fy=6.5, cx=3.1, cy=2.4, width=6, height=5)  # fmt: skip
    means = 0.2 * torch.randn(7, 3, generator=g)
    means[5] = torch.tensor([4.0, -5.0, 2.0])  # behind the camera
    means[6] = torch.tensor([-3.0, -3.0, 1.0])  # off the image
    size = torch.tensor([1.5, 1.5, 1.5, 1.5, 0.05, 0.5, 0.05])[:, None]
    scene = dict(
        means=means,
        scales=size * (0.7 + 0.6 * torch.rand(7, 3, generator=g)),
        quats=torch.randn(7, 4, generator=g),
        opacities=0.9 + 0.1 * torch.rand(7, generator=g),
        sh=0.5 * torch.randn(7, 9, 3, generator=g),
    )
    return scene, cameras


@pytest.mark.parametrize(("chunk", "tile_size"), [(3, 2), (4096, 8)])
def test_matches_a_brute_force_loop(chunk: int, tile_size: int) -> None:
    scene, cameras = brute_force_scene()
    background = (0.1, 0.5, 0.9)
    expected, counts = brute_force(scene, cameras, 0, background)
    assert counts["culled"] >= 2 and counts["skipped"] > 0 and counts["stopped"] > 0  # every rule is exercised
    out = rasterize_splats(**scene, cameras=cameras, index=0, background=background, chunk=chunk, tile_size=tile_size)
    for name in ("rgb", "alpha", "depth"):
        torch.testing.assert_close(out[name], expected[name], rtol=1e-5, atol=2e-5)


# --- against gsplat ------------------------------------------------------------------------------


def test_the_gsplat_call_hands_gsplat_the_camera_it_reads(monkeypatch) -> None:
    """Without gsplat: a stand-in `gsplat.rasterization` rebuilds the camera from the viewmats and
    Ks it is given, as gsplat reads them (world-to-camera, K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]),
    and draws with the reference; that must be the reference's own image of the first camera."""
    scene, cameras = brute_force_scene()
    calls = []

    def rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, backgrounds, **options):
        calls.append(options)
        assert viewmats.shape == (1, 4, 4) and Ks.shape == (1, 3, 3) and backgrounds.shape == (1, 3)
        assert colors.shape == (len(means), (sh_degree + 1) ** 2, 3)
        K = Ks[0]
        torch.testing.assert_close(K[2], torch.tensor([0.0, 0.0, 1.0]))
        assert K[0, 1] == 0 and K[1, 0] == 0
        seen = Cameras(c2w=torch.linalg.inv(viewmats), fx=float(K[0, 0]), fy=float(K[1, 1]), cx=float(K[0, 2]), cy=float(K[1, 2]),
                       width=width, height=height)  # fmt: skip
        rgb = rasterize_splats(means, scales, quats, opacities, colors, seen, 0, background=backgrounds[0])["rgb"]
        return rgb[None], (1.0 - rgb[None, ..., :1]), {}

    monkeypatch.setitem(sys.modules, "gsplat", types.SimpleNamespace(rasterization=rasterization))
    drawn = rasterize_splats_gsplat(**scene, cameras=cameras, index=0, background=(0.1, 0.5, 0.9))
    expected = rasterize_splats(**scene, cameras=cameras, index=0, background=(0.1, 0.5, 0.9))["rgb"]
    assert drawn.shape == (cameras.height, cameras.width, 3)
    torch.testing.assert_close(drawn, expected, rtol=1e-5, atol=1e-5)
    assert calls == [dict(near_plane=0.01, eps2d=EPS2D, radius_clip=0.0, packed=False, rasterize_mode="classic", render_mode="RGB")]


@requires_cuda
def test_agrees_with_gsplat() -> None:
    pytest.importorskip("gsplat")
    g = torch.Generator().manual_seed(1)
    n, device = 3000, "cuda"
    cameras = Cameras(c2w=look_at(torch.tensor([[2.5, 1.0, 1.5]]), torch.zeros(3), torch.tensor([0.0, 0.0, 1.0])),
                      fx=70.0, fy=72.0, cx=40.3, cy=29.7, width=80, height=60).to(device)  # fmt: skip
    scene = dict(
        means=(torch.rand(n, 3, generator=g) * 2 - 1).to(device),
        scales=(0.01 + 0.06 * torch.rand(n, 3, generator=g)).to(device),
        quats=torch.randn(n, 4, generator=g).to(device),
        opacities=(0.05 + 0.85 * torch.rand(n, generator=g)).to(device),  # below any alpha cap
        sh=(0.4 * torch.randn(n, 16, 3, generator=g)).to(device),
    )
    background = (0.2, 0.4, 0.6)
    out = rasterize_splats(**scene, cameras=cameras, index=0, background=background)
    drawn = rasterize_splats_gsplat(**scene, cameras=cameras, index=0, background=background)
    assert drawn.shape == (60, 80, 3)
    assert (out["rgb"] - drawn).abs().mean() < 1e-2
    # alpha: a white background shows through by the final transmittance more than a black one
    black, white = (rasterize_splats_gsplat(**scene, cameras=cameras, index=0, background=(v, v, v)) for v in (0.0, 1.0))
    assert (out["alpha"] - (1.0 - (white - black).mean(-1))).abs().mean() < 1e-2
    # depth: with each Gaussian's colour its view depth (degree 0), the rgb is gsplat's "D" render
    w2c = torch.linalg.inv(cameras.c2w[0])
    tz = scene["means"] @ w2c[2, :3] + w2c[2, 3]
    by_depth = dict(scene, sh=((tz - 0.5) / SH_C0)[:, None, None].expand(n, 1, 3).contiguous())
    torch.testing.assert_close(rasterize_splats(**by_depth, cameras=cameras, index=0)["rgb"][..., 0], out["depth"], rtol=1e-4, atol=1e-4)
    depth = rasterize_splats_gsplat(**by_depth, cameras=cameras, index=0)[..., 0]
    assert (out["depth"] - depth).abs().mean() < 1e-2
