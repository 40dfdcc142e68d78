"""Mesh export: marching cubes of an analytic field, colours, formats, metrics and the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from apps.cli import main
from apps.export.mesh import NoSurfaceError, density_level, export_mesh, remove_unseen, write_mesh
from apps.export.mesh_metrics import mesh_quality, scene_size
from fields.base import Field
from render import Model, OccupancyGrid, RenderSettings

CENTER = torch.tensor([0.1, -0.05, 0.05])
RADIUS = 0.5
COLOUR = torch.tensor([0.2, 0.6, 0.9])
BOX = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
STEP = 0.01


class SphereField(Field):
    """Density `sigma` inside a sphere, 0 outside; one colour from every direction."""

    name = "sphere"

    def __init__(self, sigma: float = 1000.0) -> None:
        super().__init__()
        self.register_buffer("aabb", BOX.clone())
        self.sigma = sigma

    def density(self, x: torch.Tensor) -> torch.Tensor:
        return self.sigma * ((x - CENTER).norm(dim=-1) < RADIUS).float()

    def radiance(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return COLOUR.expand(x.shape[0], 3)


def sphere_model() -> Model:
    field = SphereField()
    grid = OccupancyGrid(field.aabb, 32)
    grid.update(field.density, STEP)
    return Model(field, grid, RenderSettings(step_size=STEP))


def coloured_sphere(radius: float, resolution: int = 40) -> o3d.geometry.TriangleMesh:
    mesh = o3d.geometry.TriangleMesh.create_sphere(radius, resolution)
    vertices = np.asarray(mesh.vertices)
    mesh.vertex_colors = o3d.utility.Vector3dVector(0.5 + 0.5 * vertices / radius)
    return mesh


def test_density_level_is_the_opacity_of_one_step() -> None:
    sigma = density_level(0.5, STEP)
    assert 1.0 - np.exp(-sigma * STEP) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="level"):
        density_level(1.0, STEP)


def test_marching_cubes_of_a_sphere_is_closed_round_and_coloured(tmp_path: Path) -> None:
    resolution = 48
    mesh = export_mesh(sphere_model(), tmp_path / "sphere.ply", "mc", resolution)
    box = sphere_model().grid.occupied_box()
    voxel = float((box[1] - box[0]).max()) / (resolution - 1)
    vertices = np.asarray(mesh.vertices)
    radii = np.linalg.norm(vertices - CENTER.numpy(), axis=1)
    assert np.abs(radii - RADIUS).max() < voxel
    assert mesh.is_edge_manifold(allow_boundary_edges=False) and mesh.is_vertex_manifold()
    assert trimesh.load(tmp_path / "sphere.ply").is_watertight
    outward = ((vertices - CENTER.numpy()) * np.asarray(mesh.vertex_normals)).sum(axis=1)
    assert (outward > 0).all()
    np.testing.assert_allclose(np.asarray(mesh.vertex_colors), np.broadcast_to(COLOUR.numpy(), vertices.shape), atol=1e-5)


def test_nothing_above_the_level_is_a_clear_error(tmp_path: Path) -> None:
    model = sphere_model()
    model.field.sigma = 0.1
    with pytest.raises(NoSurfaceError, match="lower --level") as error:
        export_mesh(model, tmp_path / "empty.ply", "mc", 24)
    step = model.settings.step_size * model.world_scale
    assert error.value.most_opaque == pytest.approx(1.0 - math.exp(-0.1 * step), rel=1e-4)  # a level below it finds a surface


def test_remove_unseen_drops_an_inner_wall() -> None:
    outer, inner = coloured_sphere(0.5), coloured_sphere(0.4)
    centres = np.array([[3.0, 0.0, 0.0], [-3.0, 0.0, 0.0], [0.0, 0.0, 3.0], [0.0, 3.0, -1.0]])
    kept = remove_unseen(outer + inner, centres, lift=1e-3)
    radii = np.linalg.norm(np.asarray(kept.vertices), axis=1)
    assert radii.min() > 0.45 and len(kept.vertices) > 0.9 * len(outer.vertices)


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb"])
def test_formats_round_trip_with_colours(tmp_path: Path, suffix: str) -> None:
    mesh = coloured_sphere(0.5)
    path = write_mesh(mesh, tmp_path / f"mesh{suffix}")
    expected_vertices, expected_colours = np.asarray(mesh.vertices), np.asarray(mesh.vertex_colors)

    ours = o3d.io.read_triangle_mesh(str(path))
    assert ours.has_vertex_colors() and len(ours.triangles) == len(mesh.triangles)
    _assert_colours_match(np.asarray(ours.vertices), np.asarray(ours.vertex_colors), expected_vertices, expected_colours)

    # glTF colours are read as plain vertex colours only without the (default) material
    theirs = trimesh.load(path, force="mesh", process=False, skip_materials=True)
    assert theirs.visual.kind == "vertex" and len(theirs.faces) == len(mesh.triangles)
    _assert_colours_match(theirs.vertices, theirs.visual.vertex_colors[:, :3] / 255.0, expected_vertices, expected_colours)


def _assert_colours_match(vertices: np.ndarray, colours: np.ndarray, expected_vertices: np.ndarray, expected_colours: np.ndarray) -> None:
    """Readers may reorder vertices: compare each read vertex's colour with the nearest written one."""
    _, nearest = cKDTree(expected_vertices).query(vertices)
    np.testing.assert_allclose(colours, expected_colours[nearest], atol=1.0 / 255.0 + 1e-6)


def test_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown mesh format '.stl'"):
        write_mesh(coloured_sphere(0.5), tmp_path / "mesh.stl")


def test_chamfer_and_fscore_of_concentric_spheres() -> None:
    gap = 0.05
    inner, outer = coloured_sphere(0.5, 60), coloured_sphere(0.5 + gap, 60)
    close = mesh_quality(inner, outer, threshold=1.5 * gap, samples=20_000)
    assert close["chamfer"] == pytest.approx(gap, rel=0.1)
    assert close["fscore"] == 1.0
    assert mesh_quality(inner, outer, threshold=0.8 * gap, samples=20_000)["fscore"] == 0.0
    same = mesh_quality(inner, inner, threshold=0.03, samples=20_000)
    assert same["fscore"] > 0.99 and same["chamfer"] < 0.01
    assert scene_size(outer) == pytest.approx(2 * (0.5 + gap), rel=1e-3)


@pytest.fixture(scope="module")
def trained_run(sphere_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("mesh_run") / "run"
    # a fixed iteration count, not a --budget: on a busy machine a few seconds may train nothing
    argv = ["train", "--data", str(sphere_scene), "--out", str(run), "--iters", "60"]
    assert main([*argv, "--grid-init", "24", "--grid-final", "32", "--batch-size", "512"]) == 0
    return run


@pytest.mark.parametrize("method", ["mc", "tsdf"])
def test_export_mesh_command_writes_a_glb(trained_run: Path, tmp_path: Path, method: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mesh.glb"
    options = ["--method", method, "--resolution", "48", "--faces", "2000"]
    assert main(["export-mesh", str(trained_run), "--out", str(out), *options]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    ours = o3d.io.read_triangle_mesh(str(out))
    assert ours.has_vertex_colors() and 0 < len(ours.triangles) <= 2000
    theirs = trimesh.load(out, force="mesh", skip_materials=True)
    assert theirs.visual.kind == "vertex"
    # the scene is a sphere of radius 0.5 at the origin (60 iterations only rough it out)
    assert np.abs(np.linalg.norm(np.asarray(ours.vertices), axis=1) - 0.5).mean() < 0.2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["export-mesh", "{empty}", "--out", "{tmp}/m.glb"], "no checkpoint here"),
        (["export-mesh", "{run}", "--out", "{tmp}/m.ply", "--level", "0.999999"], "no render step is that opaque"),
    ],
)
def test_export_mesh_errors_are_one_line(
    trained_run: Path, tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    values = {"empty": tmp_path / "empty", "run": trained_run, "tmp": tmp_path}
    assert main([arg.format(**values) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("command", [["export-mesh"], ["bench", "mesh"]], ids=" ".join)
def test_mesh_commands_have_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: tensorfields" in capsys.readouterr().out
