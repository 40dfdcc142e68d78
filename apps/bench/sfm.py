"""`tensorfields bench sfm`: time per stage, registered images and camera-centre error of
structure-from-motion (`data.sfm.run_sfm`) on photos with known poses.

Scenes: `sculpture` (19 phone photos 5184x3888 around an object; reference: a 104-photo COLMAP
reconstruction), `fern` (17 forward-facing images_4 photos; reference: its LLFF poses) and
`lego` (the first 20 / 40 / 80 training views at 400x400 on white: how time grows with the
image count; reference: the Blender poses). The photos are copied to a scratch folder first.
The error is the RMS distance between the recovered camera centres, after the similarity that
best aligns them (Umeyama), and the reference ones, as a percentage of the reference cameras'
mean distance from their centroid (the camera spread).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..evaluate.poses import umeyama

__all__ = ["add_arguments", "bench_sfm", "centre_error", "lego_photos", "umeyama", "LEGO_SIZE"]

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SCENES = ("sculpture", "fern", "lego")
LEGO_SIZE = 400


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..commands import colmap, types

    parser.add_argument("--scenes", nargs="+", choices=SCENES, default=list(SCENES), help="scenes to run (default: all)")
    parser.add_argument(
        "--lego-views",
        nargs="+",
        type=types.whole(3, 100, "views"),
        default=[20, 40, 80],
        help="lego runs: this many training views each, 3 to 100 (default: 20 40 80)",
    )
    parser.add_argument("--data", default=str(DATA), help=f"the reference scenes (default: {DATA})")
    parser.add_argument("--matcher", choices=colmap.MATCHERS, default=None, help="feature matching (default: chosen by the image count)")
    parser.add_argument("--mapper", choices=colmap.MAPPERS, default="incremental", help="mapping (default: incremental)")
    parser.add_argument(
        "--max-size", type=types.whole(colmap.MIN_SIZE, colmap.MAX_SIZE, "pixels"), default=colmap.DEFAULT_MAX_SIZE, help="as for colmap"
    )
    parser.add_argument("--threads", type=types.positive_int(colmap.MAX_THREADS, "threads"), default=None, help="as for colmap")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")


def bench_sfm(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run SfM with the given settings on each chosen scene and print one line per run."""
    data = Path(args.data)
    cases: list[tuple[str, Callable[[Path], dict[str, np.ndarray]]]] = []
    if "sculpture" in args.scenes:
        cases.append(("sculpture", lambda scratch: _sculpture(data / "sculpture", scratch)))
    if "fern" in args.scenes:
        cases.append(("fern", lambda scratch: _fern(data / "fern", scratch)))
    if "lego" in args.scenes:
        cases += [(f"lego-{n}", lambda scratch, n=n: lego_photos(data / "lego", scratch, n)) for n in args.lego_views]
    results = [_run(name, photos, args) for name, photos in cases]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


def _run(name: str, photos: Callable[[Path], dict[str, np.ndarray]], args: argparse.Namespace) -> dict[str, Any]:
    """SfM of one scene's photos (written by `photos` into a scratch folder, which returns the
    reference camera centres by file name); the record of `run_sfm` plus the centre error."""
    from data import SceneError
    from data.sfm import RECORD, WORK_FOLDER, run_sfm

    with tempfile.TemporaryDirectory(prefix=f"bench-sfm-{name}-") as scratch:
        folder = Path(scratch)
        reference = photos(folder)
        result: dict[str, Any] = {"scene": name, "images": len(reference)}
        try:
            transforms = run_sfm(folder, args.matcher, args.max_size, args.threads, args.mapper)
        except SceneError as error:
            result["error"] = str(error)
            print(f"bench sfm {name}: {error}")
            return result
        result.update(json.loads((folder / WORK_FOLDER / RECORD).read_text()))
        del result["photos"]
        frames = json.loads(transforms.read_text())["frames"]
        recovered = np.array([frame["transform_matrix"] for frame in frames])[:, :3, 3]
        truth = np.stack([reference[Path(frame["file_path"]).name] for frame in frames])
        result["centre_error_percent"] = 100 * centre_error(recovered, truth)
    stages = ", ".join(f"{step} {s:.1f}" for step, s in result["seconds"].items())
    print(
        f"bench sfm {name}: {result['registered']}/{result['images']} registered, centre error "
        f"{result['centre_error_percent']:.2f}% of the camera spread; seconds: {stages}"
    )
    return result


def centre_error(recovered: np.ndarray, truth: np.ndarray) -> float:
    """RMS distance of the Umeyama-aligned `recovered` camera centres to `truth` (`[N, 3]` each),
    as a fraction of the mean distance of `truth` from its centroid."""
    scale, rotation, shift = umeyama(recovered, truth)
    error = np.linalg.norm(scale * recovered @ rotation.T + shift - truth, axis=1)
    return float(np.sqrt((error**2).mean()) / np.linalg.norm(truth - truth.mean(0), axis=1).mean())


def _llff_centres(poses_bounds: Path) -> np.ndarray:
    """Camera centres of LLFF `poses_bounds.npy` rows (a 3x5 pose matrix, then near and far), `[N, 3]`."""
    return np.load(poses_bounds)[:, :15].reshape(-1, 3, 5)[:, :, 3]


def _sculpture(scene: Path, scratch: Path) -> dict[str, np.ndarray]:
    names = (scene / "reference" / "names.txt").read_text().split()
    centres = dict(zip(names, _llff_centres(scene / "reference" / "poses_bounds.npy")))
    photos = sorted((scene / "photos").iterdir())
    for path in photos:
        shutil.copy(path, scratch / path.name)
    return {path.name: centres[path.name] for path in photos}


def _fern(scene: Path, scratch: Path) -> dict[str, np.ndarray]:
    photos = sorted((scene / "images_4").iterdir())
    for path in photos:
        shutil.copy(path, scratch / path.name)
    return dict(zip((path.name for path in photos), _llff_centres(scene / "poses_bounds.npy")))


def lego_photos(scene: Path, scratch: Path, views: int) -> dict[str, np.ndarray]:
    """The first `views` training views of the Blender scene `scene`, composited on white and
    downsampled to `LEGO_SIZE`, written into `scratch` as photos; their camera centres by name."""
    from data.images import composite, read_image, resize_image
    import imageio.v3 as iio

    centres = {}
    for frame in json.loads((scene / "transforms_train.json").read_text())["frames"][:views]:
        source = scene / f"{frame['file_path']}.png"
        image = resize_image(composite(read_image(source), (1.0, 1.0, 1.0)), (LEGO_SIZE, LEGO_SIZE))
        iio.imwrite(scratch / source.name, image)
        centres[source.name] = np.array(frame["transform_matrix"])[:3, 3]
    return centres
