"""`tensorfields view RUN`: a Gradio app to explore a trained run in the browser.

The picture is the camera: drag on it to orbit, shift- or right-drag to pan, scroll to zoom,
double-click to re-centre (`camera`, `page`); the sliders (azimuth, elevation, distance, field
of view) follow and can be dragged too. Every camera change is answered with a coarse frame at
once (`frames.COARSE_WIDTH` pixels wide, scaled up to fill the panel) and, once the camera is
still, the frame at the chosen resolution. A forward-facing run's camera stays within its
capture's frustum (`frames.orbit_rig`). RGB, depth or opacity; the training cameras can be drawn
as frusta (`overlay`), and a picker compares a training view with its ground truth and moves the
camera there. The info panel shows the run, its field and size and its metrics, rounded; the
rank slider appears only for a field trained slimmable (TRaIn, `train --slimmable`), the only
kind whose low ranks are worth looking at. "Export mesh" writes a `.glb` and "Export splats" a
3DGS `.ply`, each shown in a 3D view and offered for download (into a temporary folder made on
the first export and removed at exit).

The handlers are methods of `ViewerState`, which tests call without a browser. `launch_viewer`
serves it with what the viewer uses and no more (`ViewerGuard`): requests must name this machine
in their Host header (a web page cannot reach the viewer through DNS rebinding), and Gradio's
upload routes are closed (the viewer takes no files).
"""

from __future__ import annotations

import atexit
import errno
import ipaddress
import json
import logging
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data import Cameras, Scene, SceneError, load_scene
from fields.base import Slimmable
from render import Model

from ..evaluate import psnr
from ..runs import load_checkpoint, load_run_config, train_cameras
from .camera import Gesture, ViewPose, apply_gesture, clamp_pose, pose_of_camera
from .frames import COARSE_WIDTH, RENDER_MODES, OrbitRig, orbit_rig, progressive_frames, render_frame
from .overlay import FRUSTUM_DEPTH, draw_frusta
from .page import PAGE_CSS, PAGE_JS

__all__ = [
    "RESOLUTIONS",
    "DEFAULT_WIDTH",
    "PREVIEW_WIDTH",
    "BLOCKED_ROUTES",
    "ViewerState",
    "ViewerGuard",
    "open_viewer",
    "build_viewer",
    "launch_viewer",
    "allowed_hosts",
    "check_address",
    "format_metric",
]

log = logging.getLogger(__name__)

#: frame widths the resolution selector offers, and the one it starts at
RESOLUTIONS = (64, 128, 256, 512)
DEFAULT_WIDTH = 256
#: width of the coarse frames rendered while the camera moves (a slider or a gesture)
PREVIEW_WIDTH = COARSE_WIDTH
#: metrics.json entries shown in the panel: label and format
METRIC_FORMATS = {
    "psnr": ("held-out PSNR", "{:.2f} dB"),
    "ssim": ("held-out SSIM", "{:.3f}"),
    "iterations": ("iterations", "{:,}"),
    "train_seconds": ("training time", "{:.0f} s"),
}
#: Gradio routes the viewer never uses, refused with 403: uploads (and their progress) and
#: recordings would store files on this machine and serve them back
BLOCKED_ROUTES = ("/gradio_api/upload", "/gradio_api/process_recording", "/upload")
#: Host names that are always this machine
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

#: what every frame handler returns: the picture (uint8 `[H, W, 3]`) and the info panel
Frame = tuple[np.ndarray, str]


def format_metric(key: str, value: Any) -> str:
    """A metrics.json value as the panel shows it ("psnr", 28.0889 -> "28.09 dB"); a value of
    an unexpected type as it is."""
    _, pattern = METRIC_FORMATS[key]
    try:
        return pattern.format(value)
    except (TypeError, ValueError):
        return str(value)


@dataclass
class ViewerState:
    """A loaded run and what the viewer remembers between events.

    The frame handlers take the controls in one order (`CONTROL_NAMES`): azimuth, elevation,
    distance, fov, width, mode, rank, target (the look-at offset, 3 floats), show_cameras,
    selected (the training view to highlight)."""

    run_dir: Path
    model: Model
    run_config: dict[str, Any]
    rig: OrbitRig
    metrics: dict[str, Any]
    last_render_seconds: float | None = None
    last_render_width: int | None = None
    _scene: Scene | None = dataclass_field(default=None, repr=False)
    _export_dir: Path | None = dataclass_field(default=None, repr=False)
    _cameras: Cameras | None = dataclass_field(default=None, repr=False)
    #: the gesture under way: its id and the camera it began from
    _gesture: tuple[int, ViewPose] | None = dataclass_field(default=None, repr=False)

    @property
    def export_dir(self) -> Path:
        """The folder of exported meshes and splats: a temporary one, made on first use and
        removed by `close` or at exit."""
        if self._export_dir is None:
            self._export_dir = Path(tempfile.mkdtemp(prefix="tensorfields-view-"))
            atexit.register(self.close)
        return self._export_dir

    def close(self) -> None:
        """Remove the export folder (if one was made)."""
        if self._export_dir is not None:
            shutil.rmtree(self._export_dir, ignore_errors=True)
            self._export_dir = None
            atexit.unregister(self.close)

    @property
    def num_train_views(self) -> int:
        return int(self.run_config["scene"]["num_train"])

    @property
    def cameras(self) -> Cameras:
        """The run's training cameras (refined ones where the run refined them)."""
        if self._cameras is None:
            self._cameras = train_cameras(self.run_config["scene"])
        return self._cameras

    @property
    def title(self) -> str:
        """The run's folder name and its field, e.g. "lego (vm)"."""
        return f"{self.run_dir.resolve().name} ({self.model.field.name})"

    @property
    def max_rank(self) -> int | None:
        """The field's full rank when it is `Slimmable` and was trained slimmable (TRaIn), else
        None (no rank slider: the low ranks of a field trained without TRaIn are noise)."""
        field = self.model.field
        trained_slimmable = bool(self.run_config.get("train", {}).get("slimmable", False))
        return int(field.ranks) if isinstance(field, Slimmable) and trained_slimmable else None

    def start_pose(self) -> ViewPose:
        """Where the camera starts: azimuth 0 at the training cameras' elevation, distance and fov."""
        return clamp_pose(self.rig, ViewPose(0.0, self.rig.elevation, 1.0, self.rig.fov))

    def render(self, *controls: Any) -> Frame:
        """The camera's frame at the chosen width (uint8 `[H, W, 3]`) and the updated info
        panel; `controls` as `refine` takes them."""
        return _last(self.refine(*controls, coarse=False))

    def preview(self, *controls: Any) -> Frame:
        """The coarse frame only (`PREVIEW_WIDTH` wide, scaled up to the chosen width's size):
        while the camera moves; `controls` as `refine` takes them."""
        return next(self.refine(*controls))

    def refine(
        self,
        azimuth: float,
        elevation: float,
        distance: float,
        fov: float,
        width: int,
        mode: str,
        rank: int | None = None,
        target: list[float] | None = None,
        show_cameras: bool = False,
        selected: int | None = None,
        coarse: bool = True,
    ) -> Iterator[Frame]:
        """Progressive frames of the camera (`frames.progressive_frames`): the coarse one, then
        the one at `width` pixels (only that one when not `coarse`), each scaled to the final
        size, with the training cameras drawn over it when `show_cameras`."""
        pose = ViewPose(float(azimuth), float(elevation), float(distance), float(fov), _target(target))
        width = int(width)
        steps = progressive_frames(self.model, lambda w: pose.camera(self.rig, w), width, mode, rank, PREVIEW_WIDTH if coarse else width)
        for image, seconds, step in steps:
            self.last_render_seconds, self.last_render_width = seconds, step
            if show_cameras:
                image = self.draw_cameras(image, pose.camera(self.rig, width), selected)
            yield image, self.info()

    def draw_cameras(self, image: np.ndarray, view: Cameras, selected: int | None = None) -> np.ndarray:
        """`image` of camera `view` with the training cameras' frusta over it (`selected` highlighted)."""
        depth = FRUSTUM_DEPTH * self.rig.radius
        return draw_frusta(image, view, self.cameras, depth, None if selected is None else int(selected))

    def gesture(self, message: str, azimuth: float, elevation: float, distance: float, fov: float, *rest: Any) -> Iterator[tuple[Any, ...]]:
        """Apply a gesture message from the page (`camera.Gesture` JSON) to the camera: yields
        the new azimuth, elevation, distance, target and the frame (and info). A gesture's
        movement counts from the camera its first message found (the controls given then);
        moves get the coarse frame, the final message the full one, a re-centre both."""
        gesture = Gesture.parse(message)
        width, mode, rank, target, *extra = rest
        if self._gesture is None or self._gesture[0] != gesture.id:
            self._gesture = (gesture.id, ViewPose(float(azimuth), float(elevation), float(distance), float(fov), _target(target)))
        pose = apply_gesture(self.rig, self._gesture[1], gesture)
        coarse = gesture.kind == "recentre" or not gesture.final
        frames = self.refine(pose.azimuth, pose.elevation, pose.distance, pose.fov, width, mode, rank, list(pose.target), *extra, coarse=coarse)
        if not gesture.final:
            frames = iter([next(frames)])
        for image, info in frames:
            yield round(pose.azimuth, 2), round(pose.elevation, 2), round(pose.distance, 3), list(pose.target), image, info

    def go_to_view(self, index: int, width: int, mode: str, rank: int | None = None, show_cameras: bool = False) -> Iterator[tuple[Any, ...]]:
        """Move the camera to training view `index` (`camera.pose_of_camera`, within the rig's
        ranges): yields azimuth, elevation, distance, fov, target and the progressive frames."""
        index = min(max(int(index), 0), self.num_train_views - 1)
        pose = clamp_pose(self.rig, pose_of_camera(self.rig, self.cameras, index))
        frames = self.refine(pose.azimuth, pose.elevation, pose.distance, pose.fov, width, mode, rank, list(pose.target), show_cameras, index)
        for image, info in frames:
            yield round(pose.azimuth, 2), round(pose.elevation, 2), round(pose.distance, 3), round(pose.fov, 2), list(pose.target), image, info

    def info(self) -> str:
        """Markdown: field type, parameters, size, training metrics (rounded), last render time."""
        field = self.model.field
        lines = [
            f"**field** {field.name} ({type(field).__name__})",
            f"**parameters** {field.num_parameters():,} ({field.nbytes() / 2**20:.1f} MB)",
        ]
        lines += [f"**{label}** {format_metric(key, self.metrics[key])}" for key, (label, _) in METRIC_FORMATS.items() if key in self.metrics]
        if self.last_render_seconds is not None:
            lines.append(f"**last frame** {self.last_render_seconds * 1000:.0f} ms at {self.last_render_width} px")
        return "  \n".join(lines)

    def training_view(self, index: int, rank: int | None = None) -> tuple[np.ndarray | None, np.ndarray | None, str]:
        """Ground truth and render (uint8 `[H, W, 3]`) of training view `index`, and their PSNR;
        (None, None, reason) when the run's scene cannot be loaded."""
        try:
            scene = self.scene()
        except SceneError as error:
            return None, None, f"ground truth unavailable: {error}"
        index = int(index)
        if not 0 <= index < self.num_train_views:
            return None, None, f"no training view {index} (the run has {self.num_train_views})"
        truth = scene.images[scene.split("train")[index]].numpy()
        image, self.last_render_seconds = render_frame(self.model, self.cameras[index], "RGB", rank)
        self.last_render_width = self.cameras.width
        score = psnr(torch.from_numpy(image) / 255.0, torch.from_numpy(truth) / 255.0)
        return truth, image, f"training view {index}: PSNR {score:.2f} dB"

    def scene(self) -> Scene:
        """The run's scene at its training downsampling, loaded on first use."""
        if self._scene is None:
            train = self.run_config["train"]
            self._scene = load_scene(train["data"], train["downsample"])
        return self._scene

    def export_mesh(self, method: str, resolution: int) -> tuple[str | None, str | None, str]:
        """Export the field's mesh as `.glb`: (path for the 3D view, path for download, message);
        no paths and the reason when the export fails."""
        from ..export.mesh import export_mesh

        out = self.export_dir / f"{self.run_dir.name}-{method}-{int(resolution)}.glb"
        try:
            mesh = export_mesh(self.model, out, method, int(resolution), cameras=self.cameras)
        except ValueError as error:
            return None, None, f"mesh export failed: {error}"
        size = out.stat().st_size / 1e6
        return str(out), str(out), f"{out.name}: {len(mesh.vertices):,} vertices, {len(mesh.triangles):,} triangles, {size:.1f} MB"

    def export_splats(self) -> tuple[str | None, str | None, str]:
        """Export the field's Gaussians as a 3DGS `.ply` (as `export-splats`): (path for the 3D
        view, path for download, message); no paths and the reason when the run holds no
        world-space Gaussians (another kind of field, or an NDC or contracted run)."""
        from ..export.splats import export_splats

        out = self.export_dir / f"{self.run_dir.name}-splats.ply"
        try:
            splats = export_splats(self.model, out)
        except ValueError as error:
            return None, None, f"splat export failed: {error}"
        size = out.stat().st_size
        return str(out), str(out), f"wrote {out.name}: {len(splats):,} Gaussians, SH degree {splats.sh_degree}, {size / 1e6:.1f} MB"


def _target(target: list[float] | None) -> tuple[float, float, float]:
    """The look-at offset from the page's state (None before any pan) as 3 floats."""
    if target is None:
        return (0.0, 0.0, 0.0)
    x, y, z = (float(v) for v in target)
    return (x, y, z)


def _last(frames: Iterator[Frame]) -> Frame:
    """The last of a progressive render's frames."""
    frame = None
    for frame in frames:
        pass
    assert frame is not None, "a progressive render yields at least one frame"
    return frame


def open_viewer(run_dir: str | Path, device: str | None = None) -> ViewerState:
    """Load a run folder for viewing; raises `CheckpointError` with a clear message when it holds
    no usable checkpoint."""
    run_dir = Path(run_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    run_config = load_run_config(run_dir)
    model = load_checkpoint(run_dir, device).model
    model.eval()
    rig = orbit_rig(train_cameras(run_config["scene"]), bounded=model.settings.ndc is not None)
    return ViewerState(run_dir, model, run_config, rig, _read_metrics(run_dir / "metrics.json"))


def _read_metrics(path: Path) -> dict[str, Any]:
    """The run's metrics.json for the info panel; {} when there is none. A damaged one only
    costs the panel its metrics: a warning naming the file, and the viewer starts."""
    if not path.is_file():
        return {}
    try:
        metrics = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        log.warning("%s: unreadable (%s); the viewer shows no training metrics", path, " ".join(str(error).split()))
        return {}
    if not isinstance(metrics, dict):
        log.warning("%s: not a JSON object (a %s); the viewer shows no training metrics", path, type(metrics).__name__)
        return {}
    return metrics


def allowed_hosts(host: str) -> frozenset[str]:
    """Host names a request to a viewer listening on `host` may carry: this machine's loopback
    names and `host` itself; when it listens on every interface (0.0.0.0, ::), also this
    machine's name (any IP address is accepted then too, see `ViewerGuard`)."""
    names = set(LOCAL_HOSTS) | {host.strip("[]").lower()}
    if host in ("0.0.0.0", "::", ""):
        hostname = socket.gethostname().lower()
        names |= {hostname, f"{hostname}.local", socket.getfqdn().lower()}
    return frozenset(names - {""})


class ViewerGuard:
    """ASGI middleware in front of the viewer's Gradio app: a request whose Host header names
    another machine gets 400 (DNS rebinding: a web page whose name points at 127.0.0.1 would
    otherwise drive the viewer from the browser), one to `BLOCKED_ROUTES` gets 403.

    hosts: the Host names accepted (any, when None); any_address: also any IP address (a viewer
    listening on every interface, reached by the address of one of them)."""

    def __init__(self, app: Any, hosts: frozenset[str] | None, any_address: bool = False) -> None:
        self.app, self.hosts, self.any_address = app, hosts, any_address

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            refusal = self.refusal(scope)
            if refusal is not None:
                await _refuse(scope, send, *refusal)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: dict[str, Any]) -> tuple[int, str] | None:
        """(status, reason) for a request to refuse, None for one to serve."""
        path = scope.get("path", "")
        if any(path.startswith(route) for route in BLOCKED_ROUTES):
            return 403, "the viewer takes no uploads"
        if self.hosts is None:
            return None
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        name = _host_name(host)
        if name in self.hosts or (self.any_address and _is_address(name)):
            return None
        return 400, "invalid Host header: the viewer answers only to this machine's names"


def _host_name(host: str) -> str:
    """"127.0.0.1:7860" -> "127.0.0.1", "[::1]:7860" -> "::1", "LocalHost" -> "localhost"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


async def _refuse(scope: dict[str, Any], send: Any, status: int, reason: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = reason.encode() + b"\n"
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def check_address(host: str, port: int | None) -> None:
    """Raise ValueError naming --host or --port when the viewer could not listen there (Gradio
    would report any such failure as "Cannot find empty port")."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port or 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as error:
        raise ValueError(f"--host {host}: not a host name or address this machine can resolve ({error})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ValueError(f"--port {port}: in use by another program; choose another, or leave --port out") from None
            if error.errno == errno.EADDRNOTAVAIL:
                raise ValueError(f"--host {host}: not an address of this machine") from None
            if error.errno == errno.EACCES:
                raise ValueError(f"--port {port}: not allowed (ports below 1024 need privileges)") from None
            raise


def launch_viewer(demo: Any, host: str = "127.0.0.1", port: int | None = None, share: bool = False, **launch: Any) -> Any:
    """Serve the viewer `demo` (from `build_viewer`) behind `ViewerGuard`: one event at a time;
    with `share` (a public gradio.live link, whose requests carry its name) any Host header is
    accepted, uploads stay closed. `launch` goes to `gr.Blocks.launch` (e.g.
    prevent_thread_lock=True to return at once)."""
    from starlette.middleware import Middleware

    check_address(host, port)
    hosts = None if share else allowed_hosts(host)
    guard = Middleware(ViewerGuard, hosts=hosts, any_address=host in ("0.0.0.0", "::", ""))
    demo.queue(default_concurrency_limit=1)
    return demo.launch(
        server_name=host, server_port=port, share=share, app_kwargs={"middleware": [guard]}, css=PAGE_CSS, js=PAGE_JS, **launch
    )


def build_viewer(run_dir: str | Path, device: str | None = None, follow: bool = False) -> Any:
    """The viewer of a run folder as a `gr.Blocks` (not launched; `launch_viewer` serves it
    with the page's CSS and gesture script); `follow` adds the panel that follows a training
    run (`follow.add_follow_panel`: newest checkpoint, loss and held-out PSNR curves)."""
    state = open_viewer(run_dir, device)
    import gradio as gr

    with gr.Blocks(title=f"tensorfields: {state.title}") as demo:
        gr.Markdown(f"## {state.title}\n{HELP_LINE}")
        with gr.Row():
            with gr.Column(scale=3):
                image = gr.Image(label="render", type="numpy", interactive=False, elem_id="render", show_label=False)
            with gr.Column(scale=1, min_width=260):
                controls = _camera_controls(gr, state)
                info = gr.Markdown(state.info(), elem_id="info")
        gesture = gr.Textbox(elem_id="gesture", elem_classes=["tf-hidden"], show_label=False, container=False)
        views = _training_view_tab(gr, state, controls)
        controls.append(views.index)  # `selected`: the training view highlighted among the frusta
        _wire_camera(state, controls, gesture, image, info)
        views.wire(state, controls, image, info)
        if follow:
            from .follow import add_follow_panel

            add_follow_panel(state, controls, image, info)
        with gr.Row():
            with gr.Column():
                _export_tab(gr, state)
            with gr.Column():
                _splat_export_tab(gr, state)
        demo.load(state.refine, inputs=controls, outputs=[image, info], show_progress="hidden")
    return demo


#: the line under the title saying how to move the camera
HELP_LINE = "drag the picture to orbit · shift- or right-drag to pan · scroll to zoom · double-click to re-centre"


def _camera_controls(gr: Any, state: ViewerState) -> list[Any]:
    """Inputs of `ViewerState.refine` but `selected`, in its argument order: the sliders within
    the rig's ranges, a rank slider only for fields trained slimmable (`max_rank`), the look-at
    offset (a `gr.State`) and the frusta checkbox."""
    rig, pose = state.rig, state.start_pose()
    azimuth = gr.Slider(*rig.azimuth_range, value=pose.azimuth, step=0.5, label="azimuth (deg)", elem_id="azimuth")
    elevation = gr.Slider(*rig.elevation_range, value=round(pose.elevation, 1), step=0.5, label="elevation (deg)", elem_id="elevation")
    distance = gr.Slider(*rig.distance_range, value=pose.distance, step=0.01, label="distance (x training cameras')", elem_id="distance")
    fov = gr.Slider(10, 120, value=round(pose.fov, 1), step=0.5, label="field of view (deg)", elem_id="fov")
    width = gr.Radio(list(RESOLUTIONS), value=DEFAULT_WIDTH, label="resolution (width, px)", elem_id="resolution")
    mode = gr.Radio(list(RENDER_MODES), value="RGB", label="render mode", elem_id="mode")
    max_rank = state.max_rank
    rank = gr.State(None) if max_rank is None else gr.Slider(1, max_rank, value=max_rank, step=1, label="rank", elem_id="rank")
    target = gr.State([0.0, 0.0, 0.0])
    show_cameras = gr.Checkbox(False, label="show training cameras", elem_id="show-cameras")
    return [azimuth, elevation, distance, fov, width, mode, rank, target, show_cameras]


def _wire_camera(state: ViewerState, controls: list[Any], gesture: Any, image: Any, info: Any) -> None:
    """Sliders: the coarse frame while dragged (`.input`), the progressive render on `.release`;
    selectors and the frusta checkbox: the progressive render on `.change`; gestures on the picture:
    `ViewerState.gesture`, which moves the sliders too. A newer event replaces a waiting one."""
    import gradio as gr

    quiet = {"trigger_mode": "always_last", "show_progress": "hidden"}
    for slider in (control for control in controls if isinstance(control, gr.Slider) and control.elem_id != "train-view"):
        slider.input(state.preview, inputs=controls, outputs=[image, info], **quiet)
        slider.release(state.refine, inputs=controls, outputs=[image, info], **quiet)
    width, mode, show_cameras = controls[4], controls[5], controls[8]
    for selector in (width, mode, show_cameras):
        selector.change(state.refine, inputs=controls, outputs=[image, info], **quiet)
    azimuth, elevation, distance, _, _, _, _, target = controls[:8]
    gesture.change(state.gesture, inputs=[gesture, *controls], outputs=[azimuth, elevation, distance, target, image, info], **quiet)


@dataclass
class _TrainingViews:
    """The training-view picker: its index slider, "go to this view" and "compare"."""

    index: Any
    go: Any
    compare: Any
    truth: Any
    render: Any
    score: Any

    def wire(self, state: ViewerState, controls: list[Any], image: Any, info: Any) -> None:
        """"go to this view" moves the camera (sliders and look-at) there; "compare" renders
        the view beside its ground truth."""
        azimuth, elevation, distance, fov, width, mode, rank, target, show_cameras = controls[:9]
        self.go.click(
            state.go_to_view,
            inputs=[self.index, width, mode, rank, show_cameras],
            outputs=[azimuth, elevation, distance, fov, target, image, info],
            show_progress="hidden",
        )
        self.compare.click(state.training_view, inputs=[self.index, rank], outputs=[self.truth, self.render, self.score])


def _training_view_tab(gr: Any, state: ViewerState, controls: list[Any]) -> _TrainingViews:
    with gr.Accordion("training views", open=False):
        index = gr.Slider(0, max(state.num_train_views - 1, 0), value=0, step=1, label="training view", elem_id="train-view")
        with gr.Row():
            go = gr.Button("go to this view", elem_id="go-to-view")
            compare = gr.Button("compare with ground truth", elem_id="compare")
        with gr.Row():
            truth = gr.Image(label="ground truth", type="numpy", interactive=False)
            render = gr.Image(label="render", type="numpy", interactive=False)
        score = gr.Markdown()
    return _TrainingViews(index, go, compare, truth, render, score)


def _export_tab(gr: Any, state: ViewerState) -> None:
    with gr.Accordion("export mesh", open=False):
        with gr.Row():
            method = gr.Radio(["mc", "tsdf"], value="mc", label="method")
            resolution = gr.Slider(32, 512, value=128, step=32, label="resolution")
        button = gr.Button("export mesh", elem_id="export-mesh")
        model = gr.Model3D(label="mesh", clear_color=[1.0, 1.0, 1.0, 1.0])
        download = gr.File(label="download", elem_id="mesh-download")
        message = gr.Markdown(elem_id="mesh-message")
    button.click(state.export_mesh, inputs=[method, resolution], outputs=[model, download, message])


def _splat_export_tab(gr: Any, state: ViewerState) -> None:
    """"export splats" for every run: a Gaussian run's `.ply`, drawn as splats by `gr.Model3D`;
    other runs get the reason in the message."""
    with gr.Accordion("export splats", open=False):
        button = gr.Button("export splats", elem_id="export-splats")
        model = gr.Model3D(label="Gaussian splats", clear_color=[1.0, 1.0, 1.0, 1.0])
        download = gr.File(label="download", elem_id="splat-download")
        message = gr.Markdown(elem_id="splat-message")
    button.click(state.export_splats, outputs=[model, download, message])
