"""`tensorfields export-mesh`: a run's surface as a coloured triangle mesh (`export.mesh`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..export.mesh import MESH_FORMATS
from . import types

__all__ = ["register", "export_mesh_command"]

#: the coarsest --resolution (marching cubes needs a few points across the box)
MIN_RESOLUTION = 8
#: the most --faces
MAX_FACES = 100_000_000


def register(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export-mesh",
        help="export a run's surface as a coloured mesh (.ply, .obj, .glb)",
        description=(
            "Export a run's surface as a triangle mesh with vertex colours. mc: marching cubes on the density sampled "
            "over the occupied box; vertices no training camera sees are removed; vertex colours are rendered by the "
            "field along each vertex normal. tsdf: depth and colour rendered from the training cameras (or an orbit) "
            "fused in an Open3D TSDF volume; better for real captures; vertex colours are the views' fused colours. "
            "Small floating clusters are removed."
        ),
    )
    export.add_argument("run", help="run folder")
    export.add_argument(
        "--out", type=types.extension(*MESH_FORMATS), required=True, help="mesh file: .ply, .obj or .glb (vertex colours kept in all three)"
    )
    export.add_argument("--method", choices=["mc", "tsdf"], default="mc", help="marching cubes or TSDF fusion (default: mc)")
    export.add_argument(
        "--resolution",
        type=types.whole(MIN_RESOLUTION, types.MAX_GRID),
        default=256,
        help=f"grid points (mc) or voxels (tsdf) along the occupied box's longest side, {MIN_RESOLUTION} to {types.MAX_GRID} "
        "(default: 256)",
    )
    export.add_argument(
        "--level",
        type=types.real(0, 1, low_open=True, high_open=True, noun="an opacity"),
        default=None,
        help="mc: the surface is where one render step becomes this opaque, alpha = 1 - exp(-density * step_size), "
        "i.e. density = -ln(1 - level) / step_size (default: 0.01, where the renderer starts to see a surface; "
        "briefly trained fields have soft edges that higher levels cut into); "
        "tsdf: the least pixel opacity whose depth is fused (default: 0.5); between 0 and 1 (both excluded)",
    )
    export.add_argument(
        "--faces",
        type=types.non_negative_int(MAX_FACES, "triangles", zero_means="keep all"),
        default=0,
        help=f"decimate to about this many triangles, at most {MAX_FACES:,} (default: 0, keep all)",
    )
    export.add_argument(
        "--orbit",
        type=types.non_negative_int(types.MAX_FRAMES, "views", zero_means="the training views"),
        default=0,
        help=f"tsdf: fuse this many orbit views (at most {types.MAX_FRAMES}) instead of the training views (default: 0)",
    )
    export.add_argument("--device", type=types.device, default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    export.set_defaults(func=export_mesh_command)


def export_mesh_command(args: argparse.Namespace) -> Any:
    """Export the mesh (see `export.mesh.export_mesh`) and print what was written."""
    import torch

    from ..export.mesh import check_format, export_mesh
    from ..export.video import video_cameras
    from ..runs import load_checkpoint, load_run_config, train_cameras

    check_format(Path(args.out))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_checkpoint(args.run, device).model
    scene_info = load_run_config(args.run)["scene"]
    cameras = train_cameras(scene_info)
    if args.orbit > 0:
        cameras = video_cameras(cameras, args.orbit, scene_info["forward_facing"])
    started = time.perf_counter()
    mesh = export_mesh(model, args.out, args.method, args.resolution, args.level, args.faces, cameras)
    seconds = time.perf_counter() - started
    print(f"wrote {args.out}: {len(mesh.vertices):,} vertices, {len(mesh.triangles):,} triangles ({args.method}, {seconds:.1f} s)")
    return mesh
