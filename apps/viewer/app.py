"""`tensorfields view RUN`: a Gradio app to explore a trained run in the browser.

An orbit camera (azimuth, elevation, distance, field of view) renders RGB, depth or opacity; a
slider being dragged gets a small preview and the full frame comes when it is released. A panel
shows the field, its size, the run's metrics and the last frame's render time; a training-view
picker compares the render at a training camera with its ground-truth image (PSNR); "Export
mesh" writes a `.glb` shown in a 3D view and offered for download.

The handlers are methods of `ViewerState`, which tests call without a browser.
"""

from __future__ import annotations

import json
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

__all__ = ["RESOLUTIONS", "PREVIEW_WIDTH", "ViewerState", "open_viewer", "build_viewer"]

#: frame widths the resolution selector offers
RESOLUTIONS = (64, 128, 256, 512)
#: width of the frames rendered while a slider is being dragged
PREVIEW_WIDTH = 64
#: metrics.json entries shown in the panel, with their labels
METRIC_LABELS = {"psnr": "held-out PSNR (dB)", "ssim": "held-out SSIM", "iterations": "iterations", "train_seconds": "training time (s)"}


@dataclass
class ViewerState:
    """A loaded run and what the viewer remembers between events."""

    run_dir: Path
    model: Model
    run_config: dict[str, Any]
    rig: OrbitRig
    metrics: dict[str, Any]
    export_dir: Path
    last_render_seconds: float | None = None
    _scene: Scene | None = dataclass_field(default=None, repr=False)

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


def open_viewer(run_dir: str | Path, device: str | None = None) -> ViewerState:
    """Load a run folder for viewing; raises `CheckpointError` with a clear message when it holds
    no usable checkpoint."""
    run_dir = Path(run_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    run_config = load_run_config(run_dir)
    model = load_checkpoint(run_dir, device).model
    model.eval()
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    rig = orbit_rig(train_cameras(run_config["scene"]))
    export_dir = Path(tempfile.mkdtemp(prefix="tensorfields-view-"))
    return ViewerState(run_dir, model, run_config, rig, metrics, export_dir)


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
