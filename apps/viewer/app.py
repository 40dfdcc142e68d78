"""`tensorfields view RUN`: a Gradio app to explore a trained run in the browser.

An orbit camera (azimuth, elevation, distance, field of view) renders RGB, depth or opacity; a
slider being dragged gets a small preview and the full frame comes when it is released. A panel
shows the field, its size, the run's metrics and the last frame's render time; a training-view
picker compares the render at a training camera with its ground-truth image (PSNR); "Export
mesh" writes a `.glb` and, for a Gaussian run, "Export splats" a 3DGS `.ply`, each shown in a 3D
view and offered for download (into a temporary folder made on the first export and removed at
exit).

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
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data import Scene, SceneError, load_scene
from fields.base import Slimmable
from render import Model

from ..evaluate import psnr
from ..runs import load_checkpoint, load_run_config, train_cameras
from .frames import RENDER_MODES, OrbitRig, orbit_camera, orbit_rig, render_frame

__all__ = [
    "RESOLUTIONS",
    "PREVIEW_WIDTH",
    "BLOCKED_ROUTES",
    "ViewerState",
    "ViewerGuard",
    "open_viewer",
    "build_viewer",
    "launch_viewer",
    "allowed_hosts",
    "check_address",
]

log = logging.getLogger(__name__)

#: frame widths the resolution selector offers
RESOLUTIONS = (64, 128, 256, 512)
#: width of the frames rendered while a slider is being dragged
PREVIEW_WIDTH = 64
#: metrics.json entries shown in the panel, with their labels
METRIC_LABELS = {"psnr": "held-out PSNR (dB)", "ssim": "held-out SSIM", "iterations": "iterations", "train_seconds": "training time (s)"}
#: Gradio routes the viewer never uses, refused with 403: uploads (and their progress) and
#: recordings would store files on this machine and serve them back
BLOCKED_ROUTES = ("/gradio_api/upload", "/gradio_api/process_recording", "/upload")
#: Host names that are always this machine
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass
class ViewerState:
    """A loaded run and what the viewer remembers between events."""

    run_dir: Path
    model: Model
    run_config: dict[str, Any]
    rig: OrbitRig
    metrics: dict[str, Any]
    last_render_seconds: float | None = None
    _scene: Scene | None = dataclass_field(default=None, repr=False)
    _export_dir: Path | None = dataclass_field(default=None, repr=False)

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
    def max_rank(self) -> int | None:
        """The field's full rank when it is `Slimmable`, else None (no rank slider)."""
        field = self.model.field
        return int(field.ranks) if isinstance(field, Slimmable) else None

    def render(
        self, azimuth: float, elevation: float, distance: float, fov: float, width: int, mode: str, rank: int | None = None
    ) -> tuple[np.ndarray, str]:
        """The orbit camera's frame (uint8 `[H, W, 3]`) and the updated info panel."""
        camera = orbit_camera(self.rig, azimuth, elevation, distance, fov, int(width))
        image, self.last_render_seconds = render_frame(self.model, camera, mode, rank)
        return image, self.info()

    def preview(
        self, azimuth: float, elevation: float, distance: float, fov: float, width: int, mode: str, rank: int | None = None
    ) -> tuple[np.ndarray, str]:
        """`render` at no more than `PREVIEW_WIDTH` pixels wide (while a slider moves)."""
        return self.render(azimuth, elevation, distance, fov, min(int(width), PREVIEW_WIDTH), mode, rank)

    def info(self) -> str:
        """Markdown: field type, parameters, size, training metrics, last render time."""
        field = self.model.field
        lines = [
            f"**field** {field.name} ({type(field).__name__})",
            f"**parameters** {field.num_parameters():,} ({field.nbytes() / 2**20:.2f} MB)",
        ]
        lines += [f"**{label}** {self.metrics[key]}" for key, label in METRIC_LABELS.items() if key in self.metrics]
        if self.last_render_seconds is not None:
            lines.append(f"**last frame** {self.last_render_seconds * 1000:.0f} ms")
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
        camera = train_cameras(self.run_config["scene"])[index]
        image, self.last_render_seconds = render_frame(self.model, camera, "RGB", rank)
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
        cameras = train_cameras(self.run_config["scene"])
        try:
            mesh = export_mesh(self.model, out, method, int(resolution), cameras=cameras)
        except ValueError as error:
            return None, None, f"mesh export failed: {error}"
        return str(out), str(out), f"{out.name}: {len(mesh.vertices):,} vertices, {len(mesh.triangles):,} triangles"

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


def open_viewer(run_dir: str | Path, device: str | None = None) -> ViewerState:
    """Load a run folder for viewing; raises `CheckpointError` with a clear message when it holds
    no usable checkpoint."""
    run_dir = Path(run_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    run_config = load_run_config(run_dir)
    model = load_checkpoint(run_dir, device).model
    model.eval()
    rig = orbit_rig(train_cameras(run_config["scene"]))
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
    return demo.launch(server_name=host, server_port=port, share=share, app_kwargs={"middleware": [guard]}, **launch)


def build_viewer(run_dir: str | Path, device: str | None = None) -> Any:
    """The viewer of a run folder as a `gr.Blocks` (not launched)."""
    state = open_viewer(run_dir, device)
    import gradio as gr

    with gr.Blocks(title=f"tensorfields: {state.run_dir.name}") as demo:
        gr.Markdown(f"## {state.run_dir}")
        with gr.Row():
            with gr.Column(scale=2):
                image = gr.Image(label="render", type="numpy", interactive=False, elem_id="render")
            with gr.Column(scale=1):
                controls = _orbit_controls(gr, state)
                info = gr.Markdown(state.info(), elem_id="info")
        _wire_orbit(state, controls, image, info)
        _training_view_tab(gr, state, controls[-1])
        _export_tab(gr, state)
        _splat_export_tab(gr, state)
        demo.load(state.render, inputs=controls, outputs=[image, info])
    return demo


def _orbit_controls(gr: Any, state: ViewerState) -> list[Any]:
    """Inputs of `ViewerState.render`, in its argument order; a rank slider only for `Slimmable` fields."""
    rig = state.rig
    azimuth = gr.Slider(-180, 180, value=0, step=1, label="azimuth (deg)", elem_id="azimuth")
    elevation = gr.Slider(-89, 89, value=round(rig.elevation), step=1, label="elevation (deg)", elem_id="elevation")
    distance = gr.Slider(0.3, 3.0, value=1.0, step=0.05, label="distance (x training cameras')", elem_id="distance")
    fov = gr.Slider(10, 120, value=round(rig.fov), step=1, label="field of view (deg)", elem_id="fov")
    width = gr.Radio(list(RESOLUTIONS), value=128, label="resolution (width, px)", elem_id="resolution")
    mode = gr.Radio(list(RENDER_MODES), value="RGB", label="render mode", elem_id="mode")
    max_rank = state.max_rank
    if max_rank is None:
        rank = gr.State(None)
    else:
        rank = gr.Slider(1, max_rank, value=max_rank, step=1, label="rank", elem_id="rank")
    return [azimuth, elevation, distance, fov, width, mode, rank]


def _wire_orbit(state: ViewerState, controls: list[Any], image: Any, info: Any) -> None:
    """Sliders: preview while dragged (`.input`), full frame on `.release`; selectors: full frame on
    `.change`. The rank is a slider only for `Slimmable` fields (else a `gr.State` holding None)."""
    import gradio as gr

    sliders = [control for control in controls if isinstance(control, gr.Slider)]
    for slider in sliders:
        slider.input(state.preview, inputs=controls, outputs=[image, info], trigger_mode="always_last", show_progress="hidden")
        slider.release(state.render, inputs=controls, outputs=[image, info], trigger_mode="always_last", show_progress="hidden")
    for selector in (controls[4], controls[5]):
        selector.change(state.render, inputs=controls, outputs=[image, info], trigger_mode="always_last")


def _training_view_tab(gr: Any, state: ViewerState, rank: Any) -> None:
    with gr.Accordion("training view vs ground truth", open=False):
        index = gr.Slider(0, max(state.num_train_views - 1, 0), value=0, step=1, label="training view", elem_id="train-view")
        button = gr.Button("compare")
        with gr.Row():
            truth = gr.Image(label="ground truth", type="numpy", interactive=False)
            render = gr.Image(label="render", type="numpy", interactive=False)
        score = gr.Markdown()
    button.click(state.training_view, inputs=[index, rank], outputs=[truth, render, score])


def _export_tab(gr: Any, state: ViewerState) -> None:
    with gr.Accordion("export mesh", open=False):
        with gr.Row():
            method = gr.Radio(["mc", "tsdf"], value="mc", label="method")
            resolution = gr.Slider(32, 512, value=128, step=32, label="resolution")
        button = gr.Button("export mesh")
        model = gr.Model3D(label="mesh", clear_color=[1.0, 1.0, 1.0, 1.0])
        download = gr.File(label="download")
        message = gr.Markdown()
    button.click(state.export_mesh, inputs=[method, resolution], outputs=[model, download, message])


def _splat_export_tab(gr: Any, state: ViewerState) -> None:
    """"export splats" for every run: a Gaussian run's `.ply`, drawn as splats by `gr.Model3D`;
    other runs get the reason in the message."""
    with gr.Accordion("export splats", open=False):
        button = gr.Button("export splats", elem_id="export-splats")
        model = gr.Model3D(label="Gaussian splats", clear_color=[1.0, 1.0, 1.0, 1.0])
        download = gr.File(label="download")
        message = gr.Markdown()
    button.click(state.export_splats, outputs=[model, download, message])
