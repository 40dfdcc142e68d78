"""Structure-from-motion with pycolmap on the CPU: a folder of photos becomes a `transforms.json` scene.

`run_sfm(folder)` goes through five stages, each with a progress bar and its time in the log and
in `colmap/sfm.json`:

1. photos: every image is read once (in parallel) and copied into `colmap/images/`, turned
   upright by its EXIF orientation and downscaled to a long side of at most `max_size`. Unreadable
   files, exact duplicates, images of another size or orientation and photos of another camera
   (EXIF make, model and focal length) are left out with a warning;
2. features: SIFT on the copies, at most `SIFT_MAX_SIZE` pixels on the long side, upsampled
   only when small (`sift_first_octave`);
3. matching: exhaustive for up to `EXHAUSTIVE_MAX_IMAGES` images, else sequential in name order
   with loop closure (the first images are also matched with the last ones);
4. mapping: incremental (single-threaded, so the same photos always give the same cameras), or
   pycolmap's global mapper (GLOMAP); the largest model is kept;
5. undistortion of the registered copies (pinhole model).

The outputs go beside the photos when that folder can be written, else into the `out` folder:
`colmap/` (`database.db`, `images/`, the model `sparse/0` with one SIMPLE_RADIAL camera in pixels
of the copies, `undistorted/`, `sfm.json`) and `transforms.json`, which points to the undistorted
copies with their pinhole intrinsics in a world normalized by `bounds.normalize_world` (`aabb`,
`near`, `far`, `forward_facing`), and the model's points in that world as `sparse_pc.ply`, named
by its `ply_file_path` (nerfstudio's convention, see `points`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import pycolmap
from PIL import Image, ImageOps
from tqdm import tqdm

from .bounds import describe_bounds
from .colmap import colmap_transforms, read_model, sfm_points, undistort
from .images import list_images
from .points import POINTS_FILE, write_points
from .scene import SceneError

__all__ = ["DEFAULT_MAX_SIZE", "MAPPERS", "MATCHERS", "default_threads", "image_folder", "run_sfm", "sift_first_octave"]

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = 1600  # long side (pixels) of the images SfM and training see
MATCHERS = ("exhaustive", "sequential")
MAPPERS = ("incremental", "global")
EXHAUSTIVE_MAX_IMAGES = 60  # larger sets are matched sequentially (in file-name order)
SEQUENTIAL_OVERLAP = 10  # sequential matching: each image with its 10 successors (and 2^k-th ones)
MAX_DEFAULT_THREADS = 8
MIN_IMAGES = 3
MIN_REGISTERED_FRACTION = 0.5
SIFT_MIN_SIZE = 800  # small images are upsampled once more so SIFT sees at least this long a side
SIFT_MAX_SIZE = 1600  # phone photos: SIFT at most this long a side, without upsampling
# Small images have a few hundred features: guided matching, and a mapper that starts from a pair
# with 50 inliers and takes pairs with 10 matches (COLMAP: 100 and 15). A looser ratio test (0.85)
# registered more lego views but sometimes into a wrong, self-consistent model; 0.8 is kept.
WORK_FOLDER = "colmap"
RECORD = "sfm.json"
_JPEG_QUALITY = 95
_EXIF_IFD, _MAKE, _MODEL, _FOCAL_LENGTH = 0x8769, 0x010F, 0x0110, 0x920A

T = TypeVar("T")


@dataclass(frozen=True)
class _Photo:
    """One usable photo: its name, (width, height) upright as written to the copy, and its camera
    ("make model f=focal mm" from EXIF, None without)."""

    name: str
    size: tuple[int, int]
    camera: str | None


def default_threads() -> int:
    """Threads of feature extraction and matching when none are asked for: every core, at most 8."""
    return min(os.cpu_count() or 1, MAX_DEFAULT_THREADS)


def image_folder(folder: Path) -> Path:
    """Where the photos of a scene folder are: the folder itself, or its `images/`."""
    if not list_images(folder) and (folder / "images").is_dir():
        return folder / "images"
    return folder


def sift_first_octave(long_side: int) -> int:
    """SIFT's first octave for images whose long side is `long_side` pixels (after the
    `SIFT_MAX_SIZE` cap): 0 from `SIFT_MIN_SIZE` on, else -1 (upsampled once), or -2 when even
    doubling stays below it, so small images still give enough features."""
    return 0 if long_side >= SIFT_MIN_SIZE else -1 if 2 * long_side >= SIFT_MIN_SIZE else -2


def run_sfm(
    folder: Path,
    matcher: str | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
    threads: int | None = None,
    mapper: str = "incremental",
    out: Path | None = None,
) -> Path:
    """Estimate the cameras of the photos in `folder` (or `folder/images`) and write `transforms.json`.

    Args:
        matcher: "exhaustive", "sequential", or None to choose by the number of images.
        max_size: long side in pixels of the images used for features and written for training.
        threads: CPU threads of reading the photos, feature extraction and matching (None:
            `default_threads()`); SIFT is per image and each pair's RANSAC is seeded, so these
            should not depend on the thread count (two 2-thread matchings of 40 lego views gave
            identical inliers; unseeded, one of them converged to a wrong model). The
            incremental mapper always runs on one thread: with more, thread scheduling changed
            the result from run to run (on 40 sparse lego views, about one multithreaded run in
            four converged to a wrong, self-consistent model). The global mapper uses `threads`.
        mapper: "incremental" or "global" (pycolmap's GLOMAP).
        out: where the results go when `folder` cannot be written (None: that is an error).
    Returns:
        the path of the written `transforms.json` (in `folder`, or in `out`).
    Raises:
        SceneError: too few usable images, fewer than half of them registered, or no writable
            folder for the results.
    """
    start = time.perf_counter()
    if not folder.is_dir():
        raise SceneError(folder, "not a folder of photos")
    if matcher is not None and matcher not in MATCHERS:
        raise ValueError(f"matcher must be one of {', '.join(MATCHERS)}, got {matcher!r}")
    if mapper not in MAPPERS:
        raise ValueError(f"mapper must be one of {', '.join(MAPPERS)}, got {mapper!r}")
    threads = threads or default_threads()
    image_dir = image_folder(folder)
    results = _results_folder(folder, out)
    work = _fresh_work_folder(results)
    database, copies = work / "database.db", work / "images"
    seconds: dict[str, float] = {}
    photos = _stage(folder, "photos", seconds, lambda _: _prepare_photos(image_dir, copies, max_size, threads))
    matcher = matcher or ("exhaustive" if len(photos) <= EXHAUSTIVE_MAX_IMAGES else "sequential")
    size = photos[0].size
    log.info("structure-from-motion on %d images %dx%d (%s matching, %s mapping, CPU)", len(photos), *size, matcher, mapper)
    names = [photo.name for photo in photos]
    _stage(folder, "features", seconds, lambda token: _extract(database, copies, names, max(size), threads, token))
    _stage(folder, "matching", seconds, lambda token: _match(database, names, matcher, threads, token))
    model = _stage(folder, "mapping", seconds, lambda token: _map(database, copies, work / "sparse", mapper, threads, token))
    _check_registration(folder, model, names, matcher)
    undistorted = _stage(folder, "undistortion", seconds, lambda _: undistort(work / "sparse" / "0", copies, work / "undistorted"))
    reconstruction = read_model(undistorted)
    meta, bounds = colmap_transforms(reconstruction, f"{WORK_FOLDER}/undistorted/images")
    points, colours = sfm_points(reconstruction, bounds.world_from_sfm)
    write_points(results / POINTS_FILE, points, colours)
    meta = {"ply_file_path": POINTS_FILE, **meta}
    path = results / "transforms.json"
    path.write_text(json.dumps(meta, indent=2) + "\n")
    record = {
        "photos": str(image_dir.resolve()),
        "images": len(names),
        "registered": len(meta["frames"]),
        "size": list(size),
        "matcher": matcher,
        "mapper": mapper,
        "threads": threads,
        "seconds": {**seconds, "total": time.perf_counter() - start},
    }
    (work / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    log.info("%s: %s", folder, describe_bounds(bounds))
    log.info(
        "wrote %s (%d cameras, %d points) in %.1f s (%s)",
        path,
        len(meta["frames"]),
        len(points),
        record["seconds"]["total"],
        ", ".join(f"{step} {s:.1f} s" for step, s in seconds.items()),
    )
    return path


def _writable(folder: Path) -> bool:
    """Whether a file can be created in `folder` (a probe file is made and removed)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _results_folder(folder: Path, out: Path | None) -> Path:
    """`folder` when it can be written, else `out` (created)."""
    if _writable(folder):
        return folder
    if out is None:
        raise SceneError(folder, "cannot write transforms.json and colmap/ here (read-only folder); copy the photos to a writable folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SceneError(out, f"cannot create the folder for the SfM results ({error.strerror or error})") from None
    if not _writable(out):
        raise SceneError(out, "neither the photo folder nor this folder can be written; SfM results need one of them")
    log.warning("%s cannot be written: the SfM results go to %s", folder, out)
    return out


def _fresh_work_folder(results: Path) -> Path:
    """`results/colmap/` without the outputs of an earlier run."""
    work = results / WORK_FOLDER
    for child in ("images", "sparse", "undistorted"):
        shutil.rmtree(work / child, ignore_errors=True)
    for name in ("database.db", RECORD):
        (work / name).unlink(missing_ok=True)
    work.mkdir(exist_ok=True)
    return work


def _stage(folder: Path, step: str, seconds: dict[str, float], call: Callable[[pycolmap.CancellationToken], T]) -> T:
    """Run one stage in a worker thread (pycolmap releases the GIL) under a ticking progress bar,
    recording its time in `seconds[step]`. COLMAP's own log is silenced: our log says what
    happens, and its exceptions become a `SceneError` naming the stage. Ctrl-C cancels it."""
    token, outcome = pycolmap.CancellationToken(), {}

    def work() -> None:
        try:
            outcome["value"] = call(token)
        except BaseException as error:  # handed to the calling thread
            outcome["error"] = error

    level, pycolmap.logging.minloglevel = pycolmap.logging.minloglevel, 3
    worker = threading.Thread(target=work, name=f"sfm-{step}", daemon=True)
    start = time.perf_counter()
    try:
        with tqdm(desc=f"SfM {step}", bar_format="{desc}: {elapsed}", disable=None) as bar:
            worker.start()
            while worker.is_alive():
                worker.join(0.5)
                bar.refresh()
    except KeyboardInterrupt:
        token.cancel()
        worker.join()
        raise
    finally:
        pycolmap.logging.minloglevel = level
    seconds[step] = time.perf_counter() - start
    log.info("SfM %s: %.1f s", step, seconds[step])
    error = outcome.get("error")
    if isinstance(error, (RuntimeError, ValueError)) and not isinstance(error, SceneError):
        raise SceneError(folder, f"pycolmap {step} failed: {' '.join(str(error).split())}") from None
    if error is not None:
        raise error
    return outcome["value"]


def _prepare_photos(image_dir: Path, copies: Path, max_size: int, threads: int) -> list[_Photo]:
    """Copy the usable photos of `image_dir` into `copies` (upright, long side at most `max_size`).

    Returns:
        the photos of the most common size and camera, by name. The others are left out (their
        copies removed) and logged with the reason; fewer than `MIN_IMAGES` is an error.
    """
    paths = list_images(image_dir)
    if not paths:
        raise SceneError(image_dir, "no JPG/PNG images to run structure-from-motion on")
    copies.mkdir()
    with ThreadPoolExecutor(threads) as pool:
        read = list(pool.map(lambda path: _copy_photo(path, copies / path.name, max_size), paths))
    photos, problems, seen = [], {}, {}
    for path, (digest, photo) in zip(paths, read):
        if digest in seen:
            problems[path.name] = f"same content as {seen[digest]}"
        elif isinstance(photo, str):
            problems[path.name] = photo
        else:
            seen[digest] = path.name
            photos.append(photo)
    problems.update(_odd_ones(photos))
    kept = [photo for photo in photos if photo.name not in problems]
    for name in problems:
        (copies / name).unlink(missing_ok=True)
    left_out = "; ".join(f"{name} ({why})" for name, why in problems.items())
    if len(kept) < MIN_IMAGES:
        detail = f"; left out: {left_out}" if problems else ""
        raise SceneError(
            image_dir,
            f"{len(kept)} usable images of {len(paths)}; structure-from-motion needs at least {MIN_IMAGES} "
            f"distinct overlapping photos of one size and camera{detail}",
        )
    if problems:
        log.warning("%s: left out %d of %d images: %s", image_dir, len(problems), len(paths), left_out)
    return kept


def _copy_photo(path: Path, copy: Path, max_size: int) -> tuple[str, _Photo | str]:
    """Write `path` upright (EXIF orientation), long side at most `max_size`, to `copy`; a file
    that needs neither is copied as it is.

    Returns:
        the SHA-1 of the file's bytes, and the photo (its size as written) or why it is unusable.
    """
    content = path.read_bytes()
    try:
        with Image.open(path) as image:
            photo = _Photo(path.name, _upright_size(image), _camera(image))
            scale = min(1.0, max_size / max(photo.size))
            if scale == 1.0 and image.getexif().get(0x0112, 1) == 1:
                image.load()  # decode it all: a corrupt file fails here
                copy.write_bytes(content)
            else:
                size = (round(photo.size[0] * scale), round(photo.size[1] * scale))
                image.draft("RGB", size if image.getexif().get(0x0112, 1) < 5 else size[::-1])
                upright = ImageOps.exif_transpose(image).convert("RGB").resize(size, Image.Resampling.LANCZOS)
                upright.save(copy, quality=_JPEG_QUALITY) if image.format == "JPEG" else upright.save(copy, compress_level=1)
                photo = _Photo(path.name, size, photo.camera)
    except (OSError, ValueError, SyntaxError) as error:
        return hashlib.sha1(content).hexdigest(), f"cannot read image: {' '.join(str(error).split()) or type(error).__name__}"
    return hashlib.sha1(content).hexdigest(), photo


def _upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of an image once turned by its EXIF orientation (5 to 8 swap the sides)."""
    return image.size[::-1] if image.getexif().get(0x0112, 1) >= 5 else image.size


def _camera(image: Image.Image) -> str | None:
    """The camera of a photo from its EXIF ("make model f=focal mm"), None without EXIF."""
    exif = image.getexif()
    parts = [str(exif.get(tag, "")).strip("\x00 ") for tag in (_MAKE, _MODEL)]
    focal = exif.get_ifd(_EXIF_IFD).get(_FOCAL_LENGTH)
    if focal is not None:
        parts.append(f"f={float(focal):g} mm")
    return " ".join(part for part in parts if part) or None


def _odd_ones(photos: list[_Photo]) -> dict[str, str]:
    """Why each photo that differs from most of them in size (or orientation) or camera is left out:
    SfM here estimates one camera, and a scene has one image size."""
    if not photos:
        return {}
    size = Counter(photo.size for photo in photos).most_common(1)[0][0]
    cameras = Counter(photo.camera for photo in photos if photo.camera is not None and photo.size == size)
    camera = cameras.most_common(1)[0][0] if cameras else None
    problems = {}
    for photo in photos:
        if photo.size == size[::-1] and size[0] != size[1]:
            turn = "portrait" if photo.size[0] < photo.size[1] else "landscape"
            problems[photo.name] = f"{turn}, unlike most images; a scene takes photos of one orientation"
        elif photo.size != size:
            problems[photo.name] = f"{photo.size[0]}x{photo.size[1]}, unlike the {size[0]}x{size[1]} of most images"
        elif camera is not None and photo.camera not in (None, camera):
            problems[photo.name] = f"taken with {photo.camera}, unlike the {camera} of most images; SfM here estimates one camera"
    return problems


def _extract(database: Path, copies: Path, names: list[str], long_side: int, threads: int, token: pycolmap.CancellationToken) -> None:
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "SIMPLE_RADIAL"
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = threads
    extraction.max_image_size = SIFT_MAX_SIZE
    extraction.sift.first_octave = sift_first_octave(min(long_side, SIFT_MAX_SIZE))
    pycolmap.extract_features(
        database,
        copies,
        image_names=names,
        camera_mode=pycolmap.CameraMode.SINGLE,
        reader_options=reader,
        extraction_options=extraction,
        device=pycolmap.Device.cpu,
        cancellation_token=token,
    )


def _match(database: Path, names: list[str], matcher: str, threads: int, token: pycolmap.CancellationToken) -> None:
    """Match features: all pairs, or sequential pairs in name order plus the loop-closing pairs
    between the first and the last images (written to a pair list next to the database)."""
    options = pycolmap.FeatureMatchingOptions()
    options.num_threads = threads
    options.guided_matching = True
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = 0  # each pair's RANSAC seeded: the same inliers on any thread
    common = {"matching_options": options, "verification_options": verification, "device": pycolmap.Device.cpu, "cancellation_token": token}
    if matcher == "exhaustive":
        pycolmap.match_exhaustive(database, **common)
        return
    pairing = pycolmap.SequentialPairingOptions()
    pairing.overlap = SEQUENTIAL_OVERLAP
    pycolmap.match_sequential(database, pairing_options=pairing, **common)
    pairs = _loop_pairs(names, SEQUENTIAL_OVERLAP)
    if not pairs:
        return
    closing = database.with_name("loop_pairs.txt")
    closing.write_text("".join(f"{first} {last}\n" for first, last in pairs))
    pycolmap.match_image_pairs(database, pairing_options=pycolmap.ImportedPairingOptions(match_list_path=str(closing)), **common)


def _loop_pairs(names: list[str], overlap: int) -> list[tuple[str, str]]:
    """Pairs of the first and the last images that are at most `overlap` apart around a loop
    (name order): what closes a 360-degree walk that sequential matching leaves open."""
    count = len(names)
    return [
        (names[first], names[last])
        for first in range(min(overlap, count))
        for last in range(max(first + overlap + 1, count - overlap), count)
        if count - last + first <= overlap
    ]


def _map(
    database: Path, copies: Path, out: Path, mapper: str, threads: int, token: pycolmap.CancellationToken
) -> pycolmap.Reconstruction | None:
    """The largest model of incremental (one thread) or global mapping, written to `out/0` (None
    when there is none)."""
    if mapper == "incremental":
        options = pycolmap.IncrementalPipelineOptions()
        options.num_threads = 1
        options.random_seed = 0
        options.min_num_matches = 10
        options.mapper.init_min_num_inliers = 50
        models = pycolmap.incremental_mapping(database, copies, out, options=options, cancellation_token=token)
    else:
        options = pycolmap.GlobalPipelineOptions()
        options.num_threads = threads
        options.random_seed = 0
        options.min_num_matches = 10
        models = pycolmap.global_mapping(database, copies, out, options=options)
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
