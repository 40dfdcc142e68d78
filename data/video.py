"""Frames from a video for structure-from-motion: sampled at a rate, the blurriest dropped.

`extract_frames(video, fps)` reads the video with imageio (ffmpeg), keeps the first frame of
every 1 / `fps` seconds, writes them as JPEG into `<video stem>_frames/` next to the video
(through a `.partial` folder, renamed when complete) and deletes the blurry ones: sharpness is
the variance of the Laplacian (kornia) of the grey image, and a frame below `BLUR_RATIO` times
the median sharpness of its `BLUR_WINDOW` neighbouring samples is dropped. `frames.json` in that
folder records the video and rate, so a second call reuses the frames. A file ffmpeg cannot read
is one line naming it with ffmpeg's reason (not its banner), and leaves no folder behind.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import imageio.v3 as iio
import kornia
import numpy as np
import torch

from .scene import SceneError

__all__ = ["VIDEO_SUFFIXES", "extract_frames", "frames_folder", "is_video", "sharpness"]

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm")
BLUR_RATIO = 0.5
BLUR_WINDOW = 9
JPEG_QUALITY = 95
MIN_FRAMES = 3
RECORD = "frames.json"


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def frames_folder(video: Path) -> Path:
    """Where the frames of `video` go: `<stem>_frames/` next to it."""
    return video.with_name(f"{video.stem}_frames")


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image of `[H, W, 3]` uint8 (higher is sharper)."""
    rgb = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    return kornia.filters.laplacian(kornia.color.rgb_to_grayscale(rgb), kernel_size=3).var().item()


def extract_frames(video: Path, fps: float) -> Path:
    """Frames of `video` at `fps` per second minus the blurry ones, in `frames_folder(video)`.

    Returns:
        the frames folder.
    Raises:
        SceneError: an empty or unreadable video, a frames folder from another rate or video, or
            fewer than `MIN_FRAMES` sharp frames (the partial folder is removed).
    """
    if not fps > 0:
        raise ValueError(f"--fps must be positive, got {fps}")
    out = frames_folder(video)
    record = {"video": video.name, "fps": fps}
    if _reusable(out, record):
        log.info("using the frames already extracted from %s in %s", video.name, out)
        return out
    source_fps = _source_fps(video)  # before any folder is made: a file that is not a video leaves none
    partial = out.with_name(f"{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        scores = _write_samples(video, fps, source_fps, partial)
        dropped = _blurry(scores)
        for name in dropped:
            (partial / name).unlink()
        kept = len(scores) - len(dropped)
        log.info("%s: %d frames at %g fps into %s, %d blurry ones dropped", video.name, kept, fps, out, len(dropped))
        if kept < MIN_FRAMES:
            raise SceneError(video, f"only {kept} sharp frames at {fps:g} fps; use a higher --fps or a longer video")
        (partial / RECORD).write_text(json.dumps({**record, "dropped": dropped}, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return partial.rename(out)


def _reusable(out: Path, record: dict) -> bool:
    """Whether `out` holds the frames `record` describes; a folder of anything else is an error."""
    if not out.exists():
        return False
    try:
        earlier = json.loads((out / RECORD).read_text())
    except (OSError, ValueError):
        raise SceneError(out, "exists but holds no frames of this video; move it away to extract frames") from None
    if {key: earlier.get(key) for key in record} != record:
        raise SceneError(
            out, f"holds frames of {earlier.get('video')} at {earlier.get('fps')} fps; delete it to extract at {record['fps']:g} fps"
        )
    return True


def _source_fps(video: Path) -> float:
    """The frame rate of `video`; SceneError when it is empty or ffmpeg cannot read it."""
    if video.stat().st_size == 0:
        raise SceneError(video, "empty file (0 bytes), not a video")
    try:
        fps = float(iio.immeta(video, plugin="FFMPEG")["fps"])
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as error:
        raise SceneError(video, f"cannot read video: {_ffmpeg_reason(error)}") from None
    if not fps > 0:
        raise SceneError(video, f"cannot read video: no frame rate (ffmpeg reports {fps:g} fps)")
    return fps


def _ffmpeg_reason(error: Exception) -> str:
    """The last line ffmpeg wrote (e.g. "Invalid data found when processing input") instead of
    imageio's message, which carries ffmpeg's whole banner."""
    text = str(error)
    if "=== stderr ===" in text:
        lines = [line.strip() for line in text.split("=== stderr ===", 1)[1].splitlines() if line.strip()]
        if lines:
            last = lines[-1].rsplit(": ", 1)[-1]
            return f"{last} (ffmpeg cannot decode it as a video)"
    return " ".join(text.split()) or type(error).__name__


def _write_samples(video: Path, fps: float, source_fps: float, out: Path) -> dict[str, float]:
    """Write the first frame of every 1 / `fps` seconds of a `source_fps` video; returns their
    sharpness by file name."""
    try:
        scores, slot = {}, -1
        for index, frame in enumerate(iio.imiter(video, plugin="FFMPEG")):
            if int(index * fps / source_fps + 1e-6) == slot:
                continue
            slot = int(index * fps / source_fps + 1e-6)
            name = f"frame_{len(scores):05d}.jpg"
            iio.imwrite(out / name, frame[..., :3], quality=JPEG_QUALITY)
            scores[name] = sharpness(frame[..., :3])
    except (OSError, KeyError, ValueError, RuntimeError) as error:
        raise SceneError(video, f"cannot read video: {_ffmpeg_reason(error)}") from None
    return scores


def _blurry(scores: dict[str, float]) -> list[str]:
    """Names whose sharpness is below `BLUR_RATIO` times the median of their neighbourhood."""
    names = list(scores)
    values = np.array([scores[name] for name in names])
    half = BLUR_WINDOW // 2
    padded = np.pad(values, half, mode="edge")
    local = np.median(np.lib.stride_tricks.sliding_window_view(padded, BLUR_WINDOW), axis=1)
    return [name for name, value, median in zip(names, values, local) if value < BLUR_RATIO * median]
