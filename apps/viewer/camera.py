"""The viewer's camera pose and what mouse gestures on the picture do to it.

A `ViewPose` is what the sliders show (azimuth, elevation, distance, field of view) plus the
look-at point's offset from the rig's centre (`target`, world units: panning moves it). The
gestures follow three.js's OrbitControls, which most web 3D viewers (nerfstudio's among them)
use: drag to orbit, shift- or right-drag to pan so that the scene follows the pointer, the wheel
to zoom (distance), a double-click to re-centre. Every gesture is clamped to the rig's ranges, so
a forward-facing run's camera stays within the capture's frustum.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from data import Cameras

from .frames import OrbitRig, orbit_camera

__all__ = ["ViewPose", "Gesture", "GestureError", "apply_gesture", "clamp_pose", "pose_of_camera", "ORBIT_DEGREES", "ZOOM_RATE"]

#: degrees of azimuth for a drag across the whole picture's width (elevation: half of it per height)
ORBIT_DEGREES = 180.0
#: distance factor per wheel unit: exp(ZOOM_RATE * deltaY), so one 100-unit notch is about 16%
ZOOM_RATE = 0.0015
#: gesture kinds the page sends
GESTURE_KINDS = ("orbit", "pan", "zoom", "recentre")


class GestureError(ValueError):
    """A gesture message the page should never send (malformed JSON, unknown kind)."""


@dataclass(frozen=True)
class ViewPose:
    """Azimuth and elevation (degrees) about the look-at point, distance from it (x the rig's
    radius), horizontal field of view (degrees), and the look-at point's offset `target` (world
    units, 3 floats) from the rig's centre."""

    azimuth: float
    elevation: float
    distance: float
    fov: float
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def camera(self, rig: OrbitRig, width: int) -> Cameras:
        """The one camera of this pose, `width` pixels wide."""
        return orbit_camera(rig, self.azimuth, self.elevation, self.distance, self.fov, width, torch.tensor(self.target))


@dataclass(frozen=True)
class Gesture:
    """One message from the page about gesture `id`: its `kind` (`GESTURE_KINDS`), the
    pointer's movement `dx`, `dy` since the gesture began, in pixels of the picture as displayed,
    that picture's displayed `width` and `height`, the wheel's `delta` since it began (deltaY:
    positive zooms out), and whether it is the `final` message (the pointer let go, the wheel at
    rest). Movements are totals, so a skipped message loses nothing."""

    kind: str
    dx: float = 0.0
    dy: float = 0.0
    width: float = 1.0
    height: float = 1.0
    delta: float = 0.0
    id: int = 0
    final: bool = False

    @classmethod
    def parse(cls, text: str) -> Gesture:
        """A gesture from the page's JSON text; `GestureError` saying what is wrong otherwise."""
        try:
            message: Any = json.loads(text)
        except json.JSONDecodeError as error:
            raise GestureError(f"gesture is not JSON ({error})") from None
        if not isinstance(message, dict) or message.get("kind") not in GESTURE_KINDS:
            raise GestureError(f"gesture kind must be one of {', '.join(GESTURE_KINDS)}, got {text[:80]!r}")
        numbers = {}
        for name in ("dx", "dy", "width", "height", "delta"):
            value = message.get(name, getattr(cls, name))
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise GestureError(f"gesture {name} must be a finite number, got {value!r}")
            numbers[name] = float(value)
        identity, final = message.get("id", 0), message.get("final", False)
        if not isinstance(identity, int) or not isinstance(final, bool):
            raise GestureError(f"gesture id must be an integer and final true or false, got {identity!r} and {final!r}")
        return cls(message["kind"], **numbers, id=identity, final=final)


def apply_gesture(rig: OrbitRig, pose: ViewPose, gesture: Gesture) -> ViewPose:
    """The pose after `gesture` from `pose`, where it began (clamped to the rig's ranges)."""
    width, height = max(gesture.width, 1.0), max(gesture.height, 1.0)
    if gesture.kind == "orbit":
        moved = replace(
            pose,
            azimuth=pose.azimuth - ORBIT_DEGREES * gesture.dx / width,
            elevation=pose.elevation + ORBIT_DEGREES / 2 * gesture.dy / height,
        )
    elif gesture.kind == "pan":
        moved = replace(pose, target=_panned_target(rig, pose, gesture.dx, gesture.dy, width))
    elif gesture.kind == "zoom":
        moved = replace(pose, distance=pose.distance * math.exp(ZOOM_RATE * gesture.delta))
    else:  # "recentre"
        moved = replace(pose, target=(0.0, 0.0, 0.0))
    return clamp_pose(rig, moved)


def _panned_target(rig: OrbitRig, pose: ViewPose, dx: float, dy: float, width: float) -> tuple[float, float, float]:
    """The look-at offset after the scene follows the pointer by (`dx`, `dy`) display pixels:
    at the look-at point's depth one display pixel spans 2 d tan(fov / 2) / width world units."""
    c2w = pose.camera(rig, 8).c2w[0]
    right, down = c2w[:3, 0], c2w[:3, 1]
    per_pixel = 2 * pose.distance * rig.radius * math.tan(math.radians(pose.fov) / 2) / width
    target = torch.tensor(pose.target) - per_pixel * (dx * right + dy * down)
    return tuple(float(v) for v in target)


def clamp_pose(rig: OrbitRig, pose: ViewPose) -> ViewPose:
    """`pose` within the rig's ranges: azimuth wraps into [-180, 180) on a full orbit and is
    clamped on a bounded (forward-facing) one; elevation, distance and fov are clamped."""
    low, high = rig.azimuth_range
    if high - low >= 360:
        azimuth = (pose.azimuth + 180.0) % 360.0 - 180.0
    else:
        azimuth = min(max(pose.azimuth, low), high)
    return replace(
        pose,
        azimuth=azimuth,
        elevation=min(max(pose.elevation, rig.elevation_range[0]), rig.elevation_range[1]),
        distance=min(max(pose.distance, rig.distance_range[0]), rig.distance_range[1]),
        fov=min(max(pose.fov, 10.0), 120.0),
    )


def pose_of_camera(rig: OrbitRig, cameras: Cameras, index: int) -> ViewPose:
    """The pose that puts the viewer's camera where camera `index` is, looking where it looks
    (its look-at point as far along its axis as it stands from the rig's centre), with its field
    of view; not clamped to the rig's ranges."""
    c2w = cameras.c2w[index].cpu()
    position, forward = c2w[:3, 3], c2w[:3, 2]
    reach = float((position - rig.center).norm())
    pivot = position + forward * reach
    direction = -forward
    azimuth = math.degrees(math.atan2(float(direction @ rig.e2), float(direction @ rig.e1)))
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, float(direction @ rig.up)))))
    fov = math.degrees(2 * math.atan(cameras.width / (2 * float(cameras.fx[index]))))
    return ViewPose(azimuth, elevation, reach / rig.radius, fov, tuple(float(v) for v in pivot - rig.center))
