"""Mesh export (`tensorfields export-mesh`): a field's surface as a coloured triangle mesh.

Two extractors:
- `mc` (marching cubes, bounded scenes): the density is sampled on a dense grid over the occupied
  box, in chunks, and scikit-image's marching cubes runs at a density level. The level is given
  as the opacity of one render step, alpha = 1 - exp(-sigma * step_size), so the same number
  means the same thing for every field and scene. The default 0.01 (TensoRF uses 0.005) puts the
  surface where the renderer starts to see it: a well-trained field jumps from empty to opaque
  within a voxel, so any level lands there, but a field trained briefly has soft edges, and a
  high level (0.5) cuts into it (on the demo scene after 400 iterations: F-score 0.28 at 0.5,
  0.82 at 0.01, 0.78 at 0.005, where floaters start to count). Cells the occupancy grid marks empty count as density 0,
  as they do for the renderer. Vertex colours come from the field: a short ray is rendered from
  just outside each vertex inwards along its normal (what a camera looking straight at the
  surface there would see). With cameras (the CLI passes the run's training cameras), vertices
  that no camera centre can see are removed: images never constrain what lies behind surfaces,
  and the inner walls a field leaves there were most of the demo scene's mesh error.
- `tsdf` (better for real captures, whose density is noisier): depth and colour are rendered
  from cameras (the run's training cameras, or an orbit) and fused in an Open3D TSDF volume
  over the occupied box; pixels with opacity below the level are left out. Vertex colours are
  the TSDF's fused colours, i.e. the weighted mean over the views that see each vertex.

Unbounded (contracted) scenes give the mesh of the foreground: the part of the occupied region
inside the cube around the foreground ball, in world units.

Both meshes are then cleaned with Open3D (small disconnected clusters, degenerate and duplicated
triangles, unreferenced vertices), optionally decimated to a face count, and written as `.ply`,
`.obj` or `.glb` with vertex colours.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data import Cameras
from fields import Field
from render import Model, Rays, image_rays

from ..runs import RunWriteError, atomic_output

__all__ = [
    "NoSurfaceError",
    "MESH_FORMATS",
    "DEFAULT_LEVELS",
    "DEFAULT_RESOLUTION",
    "density_level",
    "sample_density",
    "marching_cubes_mesh",
    "field_vertex_colours",
    "remove_unseen",
    "tsdf_mesh",
    "clean_mesh",
    "write_mesh",
    "export_mesh",
    "check_format",
]

MESH_FORMATS = (".ply", ".obj", ".glb")
#: default --level per method: opacity of one render step (mc) / least pixel opacity fused (tsdf)
DEFAULT_LEVELS = {"mc": 0.01, "tsdf": 0.5}
#: default --resolution: grid points (mc) / voxels (tsdf) along the occupied box's longest side
DEFAULT_RESOLUTION = 256
#: clusters with fewer than this fraction of the mesh's triangles are dropped as floaters
MIN_CLUSTER_FRACTION = 0.002
#: colour rays start this many grid spacings outside a vertex and end as far inside
COLOUR_RAY_SPACINGS = 2.0
#: camera centres used for the visibility test (evenly spaced among the cameras)
VISIBILITY_CAMERAS = 32


class NoSurfaceError(ValueError):
    """No surface at the asked level: no render step of the field is that opaque (mc), or the
    mesh came out empty. `most_opaque` is the opacity of the field's most opaque render step (mc;
    None when not measured), so a caller can retry below it."""

    def __init__(self, message: str, most_opaque: float | None = None) -> None:
        super().__init__(message)
        self.most_opaque = most_opaque


def density_level(opacity: float, step_size: float) -> float:
    """The density sigma at which one render step of `step_size` has opacity `opacity`:
    alpha = 1 - exp(-sigma * step)  =>  sigma = -log(1 - alpha) / step."""
    _check_level(opacity)
    return -math.log1p(-opacity) / step_size


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"--level is an opacity and must lie in (0, 1), got {level}")


@torch.no_grad()
def sample_density(model: Model, box: torch.Tensor, resolution: int, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray, float]:
    """Density on a regular grid of points over `box [2, 3]`, `resolution` points along its
    longest side, queried `chunk` points at a time (whole x-slabs), so memory beyond the float32
    volume itself stays bounded. Points in cells the occupancy grid marks empty (and not next to
    an occupied one) get density 0, as the renderer never samples there.

    Returns:
        the volume `[X, Y, Z]` float32 (density per world unit), the world position of its first
        point `[3]`, and the spacing between points (world units, the same on every axis).
    """
    if resolution < 2:
        raise ValueError(f"--resolution must be at least 2, got {resolution}")
    field, grid = model.field, model.grid
    box = box.to(grid.aabb.device, torch.float32)
    spacing = float((box[1] - box[0]).max()) / (resolution - 1)
    counts = [int(math.ceil(float(extent) / spacing - 1e-6)) + 1 for extent in box[1] - box[0]]
    axes = [box[0, i] + spacing * torch.arange(n, device=box.device, dtype=torch.float32) for i, n in enumerate(counts)]
    volume = torch.zeros(counts, dtype=torch.float32)
    occupied = _dilated(grid.occupied)
    slabs = max(1, chunk // (counts[1] * counts[2]))
    for start in range(0, counts[0], slabs):
        points = torch.stack(torch.meshgrid(axes[0][start : start + slabs], axes[1], axes[2], indexing="ij"), dim=-1)
        at = model.field_points(points.view(-1, 3))
        volume[start : start + slabs] = _occupied_density(field, occupied, grid.aabb, at).view(points.shape[:3]).cpu()
    return volume.numpy() / model.world_scale, box[0].cpu().numpy(), spacing


def _dilated(occupied: torch.Tensor) -> torch.Tensor:
    """`occupied [X, Y, Z]` grown by one cell: a jittered occupancy update can miss the small cap
    of a cell that the surface barely enters, which would dent the mesh there."""
    return torch.nn.functional.max_pool3d(occupied[None, None].float(), 3, stride=1, padding=1)[0, 0].bool()


def _occupied_density(field: Field, occupied: torch.Tensor, aabb: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Density `[N]` at `points [N, 3]`, 0 where `occupied [X, Y, Z]` (over `aabb [2, 3]`) is False."""
    size = torch.tensor(occupied.shape, device=points.device)
    relative = (points - aabb[0]) / (aabb[1] - aabb[0])
    inside = ((relative >= 0) & (relative < 1)).all(dim=-1)
    ijk = torch.minimum((relative.clamp(min=0) * size).long(), size - 1)
    queried = (inside & occupied[ijk[:, 0], ijk[:, 1], ijk[:, 2]]).nonzero().squeeze(1)
    density = points.new_zeros(points.shape[0])
    if queried.numel() > 0:
        density[queried] = field.density(points[queried])
    return density


def marching_cubes_mesh(volume: np.ndarray, origin: np.ndarray, spacing: float, level: float) -> Any:
    """Open3D `TriangleMesh` of the surface where `volume [X, Y, Z]` (sampled at
    `origin [3] + spacing * ijk`) crosses the density `level`, with triangles facing out of the
    dense side. The volume is padded with zero density, so the mesh is closed where the surface
    meets the box."""
    from skimage import measure

    padded = np.pad(volume, 1)
    if not padded.max() > level:
        raise NoSurfaceError(f"no density above the level {level:.4g} (highest {padded.max():.4g})")
    vertices, faces, _, _ = measure.marching_cubes(padded, level, spacing=(spacing,) * 3)
    # scikit-image winds the triangles to face the dense side; reversed, they face out
    return _o3d_mesh(vertices + (origin - spacing), faces[:, ::-1])


def _o3d_mesh(vertices: np.ndarray, faces: np.ndarray) -> Any:
    import open3d as o3d

    return o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(vertices.astype(np.float64)), o3d.utility.Vector3iVector(faces.astype(np.int32))
    )


def remove_unseen(mesh: Any, centres: np.ndarray, lift: float) -> Any:
    """`mesh` without the vertices (and their triangles) that no camera centre of `centres [C, 3]`
    sees: a vertex is seen when the ray from it (lifted by `lift` along its normal, off its own
    triangles) towards a centre hits no triangle of the mesh. The centres must lie outside the
    mesh's box, so that nothing lies beyond them."""
    import open3d as o3d

    mesh.compute_vertex_normals()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    origins = np.asarray(mesh.vertices) + lift * np.asarray(mesh.vertex_normals)
    seen = np.zeros(len(origins), dtype=bool)
    for centre in centres:
        directions = centre - origins
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        rays = o3d.core.Tensor(np.concatenate([origins, directions], axis=1).astype(np.float32))
        seen |= ~scene.test_occlusions(rays).numpy()
    mesh.remove_vertices_by_mask(~seen)
    return mesh


@torch.no_grad()
def field_vertex_colours(model: Model, mesh: Any, reach: float, chunk: int = 1 << 16) -> np.ndarray:
    """Colours `[V, 3]` of `mesh`'s vertices as the field shows them: each vertex's ray starts
    `reach` outside it along its (outward) vertex normal and runs `2 * reach` inwards, rendered
    on black; what it leaves transparent is filled with the radiance at the vertex itself."""
    field, device = model.field, model.device
    mesh.compute_vertex_normals()
    vertices = torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32, device=device)
    normals = torch.as_tensor(np.asarray(mesh.vertex_normals), dtype=torch.float32, device=device)
    on_black = dataclasses.replace(model.settings, near=0.0, far=2.0 * reach, background=[0.0, 0.0, 0.0])
    colours = []
    for x, n in zip(vertices.split(chunk), normals.split(chunk)):
        rays = Rays(x + reach * n, -n, torch.full_like(x[:, 0], 2.0 * reach))
        out = model.render_progressive(rays, on_black)
        colours.append(out.rgb + (1.0 - out.opacity)[:, None] * field.radiance(model.field_points(x), -n))
    return torch.cat(colours).clamp(0.0, 1.0).cpu().numpy()


@torch.no_grad()
def tsdf_mesh(model: Model, cameras: Cameras, box: torch.Tensor, resolution: int, min_opacity: float) -> Any:
    """Open3D `TriangleMesh` (with fused vertex colours) from depth and colour rendered by every
    camera of `cameras` and integrated into a TSDF volume: a cube of `resolution`^3 voxels on the
    longest side of `box [2, 3]` (plus a truncation band), truncation 4 voxels. Pixels with
    opacity below `min_opacity` are not fused. (Open3D 0.20's `ScalableTSDFVolume` extracted
    nothing, not even from a flat test view, where `UniformTSDFVolume` works.)"""
    import open3d as o3d

    voxel = float((box[1] - box[0]).max()) / resolution
    band = 4.0 * voxel
    volume = o3d.pipelines.integration.UniformTSDFVolume(
        length=voxel * resolution + 2.0 * band,
        resolution=resolution + 8,
        sdf_trunc=band,
        color_type=o3d.pipelines.integration.TSDFVolumeColorType.RGB8,
        origin=(box[0].cpu().double().numpy() - band).reshape(3, 1),
    )
    cameras = cameras.to(model.device)
    for index in range(len(cameras)):
        rgb, depth = _rgbd(model, cameras, index, min_opacity)
        rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
            o3d.geometry.Image(rgb), o3d.geometry.Image(depth), depth_scale=1.0, depth_trunc=1e9, convert_rgb_to_intensity=False
        )
        # Open3D puts pixel centres at integer coordinates, tensorfields at integer + 0.5
        fx, fy, cx, cy = (float(v[index]) for v in (cameras.fx, cameras.fy, cameras.cx, cameras.cy))
        intrinsic = o3d.camera.PinholeCameraIntrinsic(cameras.width, cameras.height, fx, fy, cx - 0.5, cy - 0.5)
        volume.integrate(rgbd, intrinsic, np.linalg.inv(cameras.c2w[index].double().cpu().numpy()))
    return volume.extract_triangle_mesh()


def _rgbd(model: Model, cameras: Cameras, index: int, min_opacity: float) -> tuple[np.ndarray, np.ndarray]:
    """One camera's colour `[H, W, 3]` uint8 (background removed) and z-depth `[H, W]` float32
    (0 where the opacity is below `min_opacity`). The renderer's depth is the opacity-weighted
    distance along unit rays; z-depth is that distance times the ray's cosine to the optical axis."""
    image = model.render_image(cameras, index)
    opacity = image["opacity"].clamp(min=1e-6)
    background = torch.tensor(model.settings.background, device=opacity.device)
    rgb = ((image["rgb"] - (1.0 - opacity)[..., None] * background) / opacity[..., None]).clamp(0.0, 1.0)
    cosine = (image_rays(cameras, index).directions @ cameras.c2w[index, :3, 2]).view(opacity.shape)
    depth = torch.where(image["opacity"] >= min_opacity, image["depth"] / opacity * cosine, torch.zeros_like(opacity))
    return (rgb * 255.0 + 0.5).byte().cpu().numpy(), depth.float().contiguous().cpu().numpy()


def clean_mesh(mesh: Any, faces: int = 0, min_cluster_fraction: float = MIN_CLUSTER_FRACTION) -> Any:
    """`mesh` without duplicated vertices, clusters of connected triangles smaller than
    `min_cluster_fraction` of all triangles (floaters), degenerate or duplicated triangles and
    unreferenced vertices; quadric-decimated to `faces` triangles when `faces` > 0 and it has more."""
    mesh.remove_duplicated_vertices()
    clusters, cluster_sizes, _ = mesh.cluster_connected_triangles()
    sizes = np.asarray(cluster_sizes)[np.asarray(clusters)]
    mesh.remove_triangles_by_mask(sizes < min_cluster_fraction * len(mesh.triangles))
    mesh.remove_degenerate_triangles()
    mesh.remove_duplicated_triangles()
    mesh.remove_unreferenced_vertices()
    if 0 < faces < len(mesh.triangles):
        mesh = mesh.simplify_quadric_decimation(target_number_of_triangles=faces)
        mesh.remove_unreferenced_vertices()
    return mesh


def write_mesh(mesh: Any, path: str | Path) -> Path:
    """Write `mesh` with its vertex colours as `.ply` (binary), `.obj` or `.glb`, by extension."""
    import open3d as o3d

    path = Path(path)
    check_format(path)
    with atomic_output(path) as partial:
        with _native_stderr() as messages:  # Open3D's PLY writer prints its failures and reports success
            if path.suffix.lower() == ".glb":
                # the legacy glTF writer makes files that Open3D's own reader rejects; the tensor one does not
                written = o3d.t.io.write_triangle_mesh(str(partial), o3d.t.geometry.TriangleMesh.from_legacy(mesh))
            else:
                written = o3d.io.write_triangle_mesh(str(partial), mesh, write_ascii=False, print_progress=False)
            if written:
                back = o3d.io.read_triangle_mesh(str(partial))
                written = (len(back.vertices), len(back.triangles)) == (len(mesh.vertices), len(mesh.triangles))
        if not written:
            said = f": {messages[0]}" if messages else ""
            raise RunWriteError(f"{path}: cannot write the mesh (is the disk full?){said}")
    return path


@contextmanager
def _native_stderr() -> Iterator[list[str]]:
    """Capture what native code writes to file descriptor 2 during the block; the list it yields
    is filled with the lines when the block ends."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines += [line.strip() for line in capture.read().decode(errors="replace").splitlines() if line.strip()]


def check_format(path: Path) -> None:
    """Refuse a mesh file name whose extension is not one of `MESH_FORMATS`."""
    if path.suffix.lower() not in MESH_FORMATS:
        raise ValueError(f"{path}: unknown mesh format {path.suffix!r}; use one of {', '.join(MESH_FORMATS)}")


def export_mesh(
    model: Model,
    out: str | Path,
    method: str = "mc",
    resolution: int = DEFAULT_RESOLUTION,
    level: float | None = None,
    faces: int = 0,
    cameras: Cameras | None = None,
) -> Any:
    """Extract, colour, clean and write the mesh of a trained model; returns the Open3D mesh.

    `method` "mc" or "tsdf"; `cameras` (needed by tsdf) render the TSDF's views, or for mc tell
    which vertices are seen (none removed without them); `resolution` points (mc) or voxels (tsdf)
    along the longest side of the occupied box (the field's box when nothing is occupied);
    `level` the step opacity (mc) or least pixel opacity (tsdf), by default `DEFAULT_LEVELS`;
    `faces` > 0 decimates.

    Raises:
        NoSurfaceError: nothing reaches `level`, or the mesh is empty after cleaning.
    """
    check_format(Path(out))
    if method not in DEFAULT_LEVELS:
        raise ValueError(f"unknown mesh method {method!r}; use mc or tsdf")
    level = DEFAULT_LEVELS[method] if level is None else level
    _check_level(level)
    if model.settings.ndc is not None:
        raise ValueError("mesh export of forward-facing (NDC) runs is not supported: their field lives in NDC space")
    box = _mesh_box(model)
    if method == "mc":
        volume, origin, spacing = sample_density(model, box, resolution)
        step = model.settings.step_size * model.world_scale
        sigma = density_level(level, step)
        if not volume.max(initial=0.0) > sigma:  # --level is an opacity: say it in opacities
            most = -math.expm1(-float(volume.max(initial=0.0)) * step)
            message = f"--level {level:g}: no render step is that opaque (the most opaque reaches {most:.3g}); lower --level"
            raise NoSurfaceError(message, most)
        mesh = marching_cubes_mesh(volume, origin, spacing, sigma)
        if cameras is not None:
            centres = cameras.centers[_evenly(len(cameras), VISIBILITY_CAMERAS)].cpu().numpy()
            mesh = remove_unseen(mesh, centres, spacing)
        mesh = clean_mesh(mesh, faces)
        mesh.vertex_colors = _vectors(field_vertex_colours(model, mesh, COLOUR_RAY_SPACINGS * spacing))
    else:
        if cameras is None:
            raise ValueError("the tsdf method needs cameras to render depth from")
        mesh = clean_mesh(tsdf_mesh(model, cameras, box, resolution, level), faces)
    if len(mesh.triangles) == 0:
        raise NoSurfaceError(f"the {method} mesh is empty; try a lower --level")
    mesh.compute_vertex_normals()
    write_mesh(mesh, out)
    return mesh


def _mesh_box(model: Model) -> torch.Tensor:
    """The world box `[2, 3]` a mesh is extracted from: the occupied box (the field's box when
    nothing is occupied); for contracted scenes its part in the cube around the foreground ball."""
    box = model.grid.occupied_box()
    box = model.field.aabb if box is None else box
    contraction = model.settings.contraction
    if contraction is None:
        return box
    unit = box.clamp(-1.0, 1.0)
    return contraction.points_to_world(unit)


def _evenly(count: int, most: int) -> torch.Tensor:
    """At most `most` evenly spaced indices of `count`."""
    return torch.linspace(0, count - 1, min(count, most)).round().long()


def _vectors(values: np.ndarray) -> Any:
    import open3d as o3d

    return o3d.utility.Vector3dVector(values.astype(np.float64))
