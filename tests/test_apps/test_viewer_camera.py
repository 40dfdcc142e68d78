"""The viewer's camera maths (gestures, bounded rigs, snapping to a training view), its
progressive frames' scaling and the frusta overlay: no run, no browser."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from apps.viewer.camera import ORBIT_DEGREES, ZOOM_RATE, Gesture, GestureError, ViewPose, apply_gesture, clamp_pose, pose_of_camera
from apps.viewer.frames import OrbitRig, orbit_camera, orbit_rig, progressive_widths, upscale_nearest
from apps.viewer.overlay import COLOUR, SELECTED_COLOUR, draw_frusta
from data import Cameras
from render.paths import look_at


def _ring_cameras(count: int = 12, radius: float = 4.0, height: float = 1.5) -> Cameras:
    """Cameras on a ring around the origin (z up), looking at it: an object capture."""
    angles = torch.arange(count) * 2 * math.pi / count
    positions = torch.stack([radius * torch.cos(angles), radius * torch.sin(angles), torch.full_like(angles, height)], dim=-1)
    c2w = look_at(positions, torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]))
    return Cameras(c2w, 50.0, 50.0, 40.0, 30.0, 80, 60)


def _forward_cameras() -> Cameras:
    """A 3x3 grid of cameras 0.2 apart, all looking at a point 5 away down +y: a forward-facing capture."""
    positions = torch.tensor([[x, 0.0, z] for x in (-0.2, 0.0, 0.2) for z in (-0.2, 0.0, 0.2)])
    return Cameras(look_at(positions, torch.tensor([0.0, 5.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])), 60.0, 60.0, 40.0, 30.0, 80, 60)


@pytest.fixture
def rig() -> OrbitRig:
    return orbit_rig(_ring_cameras())


def _message(**fields: object) -> str:
    return json.dumps({"kind": "orbit", "width": 200, "height": 150, "id": 1, **fields})


def test_gesture_parse_reads_the_page_message() -> None:
    gesture = Gesture.parse(_message(dx=12, dy=-3.5, final=True, seq=9))
    assert gesture == Gesture("orbit", 12.0, -3.5, 200.0, 150.0, 0.0, 1, True)


@pytest.mark.parametrize(
    "text, reason",
    [("{oops", "not JSON"), ('{"kind": "spin"}', "kind must be one of"), ('{"kind": "zoom", "delta": "a"}', "delta must be a finite number")],
)
def test_gesture_parse_says_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(GestureError, match=reason):
        Gesture.parse(text)


def test_drag_across_the_picture_orbits_half_a_turn_and_wraps(rig: OrbitRig) -> None:
    start = ViewPose(170.0, 20.0, 1.0, 40.0)
    moved = apply_gesture(rig, start, Gesture("orbit", dx=-200.0, dy=75.0, width=200.0, height=150.0))
    assert moved.azimuth == pytest.approx(170.0 + ORBIT_DEGREES - 360.0)
    assert moved.elevation == pytest.approx(20.0 + ORBIT_DEGREES / 4)
    assert apply_gesture(rig, start, Gesture("orbit", dy=10_000.0, width=200.0, height=150.0)).elevation == 89.0


def test_wheel_zooms_by_distance_within_the_range(rig: OrbitRig) -> None:
    start = ViewPose(0.0, 20.0, 1.0, 40.0)
    assert apply_gesture(rig, start, Gesture("zoom", delta=100.0)).distance == pytest.approx(math.exp(100 * ZOOM_RATE))
    assert apply_gesture(rig, start, Gesture("zoom", delta=-1e5)).distance == rig.distance_range[0]


def test_pan_moves_the_scene_with_the_pointer(rig: OrbitRig) -> None:
    start = ViewPose(30.0, 20.0, 1.0, 40.0)
    display_width, width = 400.0, 80
    moved = apply_gesture(rig, start, Gesture("pan", dx=40.0, dy=-20.0, width=display_width, height=300.0))
    pivot = rig.center  # at the old look-at point, on the picture's centre before the pan
    camera = moved.camera(rig, width)
    local = torch.linalg.inv(camera.c2w[0]) @ torch.cat([pivot, torch.ones(1)])
    x = float(camera.fx[0] * local[0] / local[2] + camera.cx[0])
    y = float(camera.fy[0] * local[1] / local[2] + camera.cy[0])
    scale = width / display_width  # picture pixels per displayed pixel
    assert x == pytest.approx(width / 2 + 40.0 * scale, abs=1e-3) and y == pytest.approx(camera.height / 2 - 20.0 * scale, abs=1e-3)
    assert apply_gesture(rig, moved, Gesture("recentre")).target == (0.0, 0.0, 0.0)


def test_forward_facing_rig_keeps_the_camera_near_the_capture() -> None:
    cameras = _forward_cameras()
    bounded, free = orbit_rig(cameras, bounded=True), orbit_rig(cameras)
    assert bounded.bounded and not free.bounded
    low, high = bounded.azimuth_range
    assert -15.0 < low < 0.0 < high < 15.0  # the capture spans a few degrees; the margin is half of it (3 at least)
    behind = clamp_pose(bounded, ViewPose(180.0, 0.0, 5.0, 40.0))
    assert behind.azimuth == high and behind.distance == bounded.distance_range[1]
    assert clamp_pose(free, ViewPose(180.0, 0.0, 1.0, 40.0)).azimuth == -180.0  # an object's orbit turns all round
    dragged = apply_gesture(bounded, ViewPose(0.0, 0.0, 1.0, 40.0), Gesture("orbit", dx=-1000.0, width=100.0))
    assert dragged.azimuth == high


@pytest.mark.parametrize("index", [0, 5])
def test_pose_of_a_training_camera_puts_the_viewer_there(rig: OrbitRig, index: int) -> None:
    cameras = _ring_cameras()
    camera = pose_of_camera(rig, cameras, index).camera(rig, cameras.width)
    torch.testing.assert_close(camera.c2w[0, :3, 3], cameras.c2w[index, :3, 3], atol=1e-4, rtol=0)
    torch.testing.assert_close(camera.c2w[0, :3, 2], cameras.c2w[index, :3, 2], atol=1e-4, rtol=0)
    assert float(camera.fx[0]) == pytest.approx(float(cameras.fx[index]), rel=1e-4)


def test_progressive_steps_and_nearest_upscaling() -> None:
    assert progressive_widths(256) == [32, 256] and progressive_widths(32) == [32] and progressive_widths(256, 256) == [256]
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    big = upscale_nearest(image, 4, 6)
    assert big.shape == (4, 6, 3) and np.array_equal(big[::2, ::2], image) and np.array_equal(big[1::2, 1::2], image)
    assert upscale_nearest(image, 2, 3) is image


def test_frusta_are_drawn_where_the_cameras_are_and_clipped_behind(rig: OrbitRig) -> None:
    cameras = _ring_cameras()
    view = orbit_camera(rig, 0.0, 80.0, 2.0, 60.0, 128)  # from above: every ring camera in sight
    blank = np.zeros((view.height, view.width, 3), dtype=np.uint8)
    drawn = draw_frusta(blank, view, cameras, depth=0.5, selected=3)
    colours = {tuple(c) for c in drawn.reshape(-1, 3)}
    assert COLOUR in colours and SELECTED_COLOUR in colours
    # the selected camera sits where the view projects its centre
    local = torch.linalg.inv(view.c2w[0]) @ torch.cat([cameras.c2w[3, :3, 3], torch.ones(1)])
    x, y = (int(view.fx[0] * local[0] / local[2] + view.cx[0]), int(view.fy[0] * local[1] / local[2] + view.cy[0]))
    patch = drawn[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3].reshape(-1, 3)
    assert any(tuple(c) == SELECTED_COLOUR for c in patch)
    behind = Cameras(cameras.c2w[:1].clone(), 50.0, 50.0, 40.0, 30.0, 80, 60)
    behind.c2w[0, :3, 3] = view.c2w[0, :3, 3] - 3.0 * view.c2w[0, :3, 2]  # well behind the viewer
    assert np.array_equal(draw_frusta(blank, view, behind, depth=0.5), blank)
    half = draw_frusta(np.zeros((view.height * 2, view.width * 2, 3), dtype=np.uint8), view, cameras, depth=0.5)
    assert half.shape == (view.height * 2, view.width * 2, 3) and (half > 0).any()  # drawn at the picture's size
