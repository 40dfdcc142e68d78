"""Structure-from-motion with pycolmap on the CPU: a folder of photos becomes a `transforms.json` scene.

`run_sfm(folder)` checks the images (unreadable files, exact duplicates and images of another size
are left out with a warning), extracts SIFT features (photos larger than `max_size` are
downscaled for extraction; keypoints stay in original pixels), matches them (exhaustive for up
to `EXHAUSTIVE_MAX_IMAGES` images, else sequential in name order), runs incremental mapping and
keeps the largest model. It writes, in `folder/colmap/`: `database.db`, the model `sparse/0`
(SIMPLE_RADIAL camera in pixels of the original photos) and `undistorted/` (undistorted copies of
the registered photos, long side at most `max_size`, and their pinhole model). `folder/
transforms.json` points to the undistorted copies, with their pinhole intrinsics, in a world
normalized by `bounds.normalize_world` (`aabb`, `near`, `far`, `forward_facing`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import pycolmap
from PIL import Image

from .bounds import describe_bounds
from .colmap import colmap_transforms, read_model, undistort
from .images import list_images
from .scene import SceneError

__all__ = ["DEFAULT_MAX_SIZE", "MATCHERS", "image_folder", "run_sfm"]

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = 1600  # long side (pixels) of the images SfM and training see
MATCHERS = ("exhaustive", "sequential")
EXHAUSTIVE_MAX_IMAGES = 60  # larger sets are matched sequentially (in file-name order)
MIN_IMAGES = 3
MIN_REGISTERED_FRACTION = 0.5
SIFT_MIN_SIZE = 800  # small images are upsampled once more so SIFT sees at least this long a side
# Small images have a few hundred features: guided matching, and a mapper that starts from a pair
# with 50 inliers and takes pairs with 10 matches (COLMAP: 100 and 15). A looser ratio test (0.85)
# registered more lego views but sometimes into a wrong, self-consistent model; 0.8 is kept.
WORK_FOLDER = "colmap"

T = TypeVar("T")


def image_folder(folder: Path) -> Path:
    """Where the photos of a scene folder are: the folder itself, or its `images/`."""
    if not list_images(folder) and (folder / "images").is_dir():
        return folder / "images"
    return folder


def run_sfm(folder: Path, matcher: str | None = None, max_size: int = DEFAULT_MAX_SIZE, threads: int = 1) -> Path:
    """Estimate the cameras of the photos in `folder` (or `folder/images`) and write `transforms.json`.

    Args:
        matcher: "exhaustive", "sequential", or None to choose by the number of images.
        max_size: long side in pixels of the images used for features and written for training.
        threads: CPU threads of every SfM step. With 1 (the default) the same photos always give
            the same cameras; with more, thread scheduling changes the result from run to run
            (on 40 sparse lego views, about one multithreaded run in four converged to a wrong,
            self-consistent model, indistinguishable by its own reprojection error).
    Returns:
        the path of the written `transforms.json`.
    Raises:
        SceneError: too few usable images, or fewer than half of them registered.
    """
    start = time.perf_counter()
    if not folder.is_dir():
        raise SceneError(folder, "not a folder of photos")
    image_dir = image_folder(folder)
    names, size = _usable_images(image_dir)
    matcher = matcher or ("exhaustive" if len(names) <= EXHAUSTIVE_MAX_IMAGES else "sequential")
    if matcher not in MATCHERS:
        raise ValueError(f"matcher must be one of {', '.join(MATCHERS)}, got {matcher!r}")
    work = _fresh_work_folder(folder)
    database = work / "database.db"
    log.info("structure-from-motion on %d images %dx%d (%s matching, CPU)", len(names), *size, matcher)
    _pycolmap(folder, "feature extraction", lambda: _extract(database, image_dir, names, max(size), max_size, threads))
    _pycolmap(folder, "matching", lambda: _match(database, matcher, threads))
    reconstruction = _pycolmap(folder, "incremental mapping", lambda: _map(database, image_dir, work / "sparse", threads))
    _check_registration(folder, reconstruction, names, matcher)
    model = _pycolmap(folder, "undistortion", lambda: undistort(work / "sparse" / "0", image_dir, work / "undistorted", max_size))
    meta, bounds = colmap_transforms(read_model(model), f"{WORK_FOLDER}/undistorted/images")
    path = folder / "transforms.json"
    path.write_text(json.dumps(meta, indent=2) + "\n")
    log.info("%s: %s", folder, describe_bounds(bounds))
    log.info("wrote %s (%d cameras) in %.1f s", path, len(meta["frames"]), time.perf_counter() - start)
    return path


def _usable_images(image_dir: Path) -> tuple[list[str], tuple[int, int]]:
    """Names of the readable, distinct images of the most common size, and that size.

    Left-out files are logged with the reason; fewer than `MIN_IMAGES` usable is an error.
    """
    paths = list_images(image_dir)
    if not paths:
        raise SceneError(image_dir, "no JPG/PNG images to run structure-from-motion on")
    sizes, problems, seen = {}, {}, {}
    for path in paths:
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        if digest in seen:
            problems[path.name] = f"same content as {seen[digest]}"
            continue
        seen[digest] = path.name
        try:
            sizes[path.name] = _image_size(path)
        except (OSError, ValueError, SyntaxError) as error:
            problems[path.name] = f"cannot read image: {' '.join(str(error).split()) or type(error).__name__}"
    common = Counter(sizes.values()).most_common(1)[0][0] if sizes else (0, 0)
    for name, size in sizes.items():
        if size != common:
            problems[name] = f"{size[0]}x{size[1]}, unlike the {common[0]}x{common[1]} of most images"
    names = [name for name in sizes if name not in problems]
    left_out = "; ".join(f"{name} ({why})" for name, why in problems.items())
    if len(names) < MIN_IMAGES:
        detail = f"; left out: {left_out}" if problems else ""
        raise SceneError(
            image_dir,
            f"{len(names)} usable images of {len(paths)}; structure-from-motion needs at least {MIN_IMAGES} "
            f"distinct overlapping photos of one size{detail}",
        )
    if problems:
        log.warning("%s: left out %d of %d images: %s", image_dir, len(problems), len(paths), left_out)
    return names, common


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, decoding it (at reduced scale for JPEG) to catch corruption."""
    with Image.open(path) as image:
        size = image.size
        image.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
        image.load()
    return size


def _fresh_work_folder(folder: Path) -> Path:
    """`folder/colmap/` without the outputs of an earlier run."""
    work = folder / WORK_FOLDER
    for child in ("sparse", "undistorted"):
        shutil.rmtree(work / child, ignore_errors=True)
    (work / "database.db").unlink(missing_ok=True)
    work.mkdir(exist_ok=True)
    return work


@contextmanager
def _quiet_colmap() -> Iterator[None]:
    """Keep COLMAP's own log to errors while it runs (our log says what happens)."""
    level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 2
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = level


def _pycolmap(folder: Path, step: str, call: Callable[[], T]) -> T:
    """Run one pycolmap step; its exceptions become a `SceneError` naming the step."""
    try:
        with _quiet_colmap():
            return call()
    except (RuntimeError, ValueError) as error:
        raise SceneError(folder, f"pycolmap {step} failed: {' '.join(str(error).split())}") from None


def _extract(database: Path, image_dir: Path, names: list[str], long_side: int, max_size: int, threads: int) -> None:
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "SIMPLE_RADIAL"
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = threads
    extraction.max_image_size = max_size
    extraction.sift.first_octave = -2 if 2 * min(long_side, max_size) < SIFT_MIN_SIZE else -1
    pycolmap.extract_features(
        database,
        image_dir,
        image_names=names,
        camera_mode=pycolmap.CameraMode.SINGLE,
        reader_options=reader,
        extraction_options=extraction,
        device=pycolmap.Device.cpu,
    )


def _match(database: Path, matcher: str, threads: int) -> None:
    options = pycolmap.FeatureMatchingOptions()
    options.num_threads = threads
    options.guided_matching = True
    if matcher == "exhaustive":
        pycolmap.match_exhaustive(database, matching_options=options, device=pycolmap.Device.cpu)
    else:
        pycolmap.match_sequential(database, matching_options=options, device=pycolmap.Device.cpu)


def _map(database: Path, image_dir: Path, out: Path, threads: int) -> pycolmap.Reconstruction | None:
    """The largest model of incremental mapping, written to `out/0` (None when there is none)."""
    options = pycolmap.IncrementalPipelineOptions()
    options.num_threads = threads
    options.random_seed = 0
    options.min_num_matches = 10
    options.mapper.init_min_num_inliers = 50
    models = pycolmap.incremental_mapping(database, image_dir, out, options=options)
    shutil.rmtree(out, ignore_errors=True)
    if not models:
        return None
    best = max(models.values(), key=lambda model: model.num_reg_images())
    (out / "0").mkdir(parents=True)
    best.write(out / "0")
    return best


def _check_registration(folder: Path, model: pycolmap.Reconstruction | None, names: list[str], matcher: str) -> None:
    """Warn about images left out of the model; fewer than half registered is an error."""
    registered = set() if model is None else {model.images[i].name for i in model.reg_image_ids()}
    missing = [name for name in names if name not in registered]
    if len(registered) < MIN_REGISTERED_FRACTION * len(names) or len(registered) < MIN_IMAGES:
        other = "sequential" if matcher == "exhaustive" else "exhaustive"
        raise SceneError(
            folder,
            f"only {len(registered)} of {len(names)} images registered ({matcher} matching); try photos with "
            f"more overlap (each scene point in 3+ photos, small steps between shots), fewer blurry frames, "
            f"or --matcher {other}",
        )
    if missing:
        log.warning("%d of %d images did not register and are left out: %s", len(missing), len(names), ", ".join(missing))
