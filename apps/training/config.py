"""`TrainConfig`, everything that defines a training run, and its command-line flags.

A config field that users set from the command line carries `flag(help, check=...)` metadata;
`add_flags` declares those flags from the dataclass (`check`, an argument type of
`apps.commands.types`, gives the flag its range: argparse refuses a bad value with one line
naming the flag) and `config_from_args` reads them back, so a new training option is one field
here (and whatever uses it), not a flag in one file and a mapping in another.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from fields import FIELDS

from ..commands import types as flag_types

if TYPE_CHECKING:
    from data import Scene

__all__ = [
    "TrainConfig",
    "flag",
    "add_flags",
    "config_from_args",
    "uses_appearance_codes",
    "uses_contraction",
    "distortion_weight",
    "supervises_depth",
    "refines_poses",
    "PHOTO_KINDS",
]

#: scene kinds whose images are photos (a COLMAP project; a transforms.json, as photo folders and
#: videos become after SfM, unless its images have alpha: then they are renders)
PHOTO_KINDS = ("colmap", "nerfstudio")


def flag(
    help: str, choices: list[str] | None = None, required: bool = False, check: Callable[[str], Any] | None = None
) -> dict[str, Any]:
    """Metadata that makes a `TrainConfig` field a command-line flag (`--name-with-dashes`).

    `check` parses and range-checks the flag's text (raising `argparse.ArgumentTypeError`, see
    `apps.commands.types`); without it the field's type parses it."""
    return {"help": help, "choices": choices, "required": required, "check": check}


#: flag ranges: rays per batch, grid resolution per axis, TRaIn's thresholds, the random seed
MAX_BATCH = 1 << 20
MIN_GRID = 8
MAX_UPSILON = 10.0
MAX_ETA = 1_000_000
MAX_SEED = 2**32 - 1
#: the distortion loss's weight on unbounded scenes (mip-NeRF 360 uses 0.01 over distances normalized
#: to [0, 1]; `render.losses.ray_distance` spans [0, 2))
DISTORTION_WEIGHT = 0.005
_GRID = flag_types.whole(MIN_GRID, flag_types.MAX_GRID, auto=0, auto_means="from the image size")


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as the run's config.json).

    iters: length of the run in iterations, unless `budget` (seconds of training) is given.
    batch_size: rays per iteration; 0 picks 4096 on a GPU (TensoRF) and 1024 on the CPU, where
        four small steps cost what one large one does and make more progress.
    grid_init, grid_final: factor grid resolution per axis; 0 picks them from the image size.
    step_ratio: ray-marching step as a fraction of the field's voxel size.
    cone_angle: cone stepping for large scenes (see `RenderSettings`); 0 keeps fixed steps.
    slimmable: train with SlimmeRF's rank incrementation (`strategies.RankIncrementation`) so that
        the field renders well at every rank; upsilon, eta: its thresholds (None: SlimmeRF's
        defaults for the kind of scene).
    appearance: "on", "off" or "auto", per-image appearance codes (see `uses_appearance_codes`).
    contraction: "on", "off" or "auto", the scene contraction of unbounded scenes (see
        `uses_contraction`).
    distortion: the weight of the distortion loss (None: `distortion_weight` picks it).
    depth_supervision: "on", "off" or "auto", the SfM keypoints' depth loss (see `supervises_depth`).
    refine_poses: "on", "off" or "auto", joint pose refinement (see `refines_poses`); pose_blur:
        its coarse-to-fine filtering, "on" or "off" (`strategies.PoseRefinement`).
    init_from, init_splats: where a Gaussian field starts (`strategies.GaussianDensification`):
        fitted to a trained run, or a 3DGS `.ply`.
    teacher: a distillation's teacher run folder (`strategies.Distillation`); set by
        `tensorfields distill`, whose scene is the teacher's renders.
    """

    data: str = dataclasses.field(
        metadata=flag("scene folder (Blender, LLFF, transforms.json, COLMAP) or, for train, photos or a video", required=True)
    )
    field: str = dataclasses.field(
        default="vm", metadata=flag(f"representation: {', '.join(sorted(FIELDS))} (default: vm)", check=flag_types.field_name)
    )
    out: str = "runs/run"
    downsample: float = dataclasses.field(
        default=1.0, metadata=flag("divide image size by this, 1 to 64 (default: 1)", check=flag_types.downsample)
    )
    iters: int = 30000
    budget: float | None = None
    batch_size: int = dataclasses.field(
        default=0,
        metadata=flag(
            f"rays per iteration, at most {MAX_BATCH:,} (default: 4096 on a GPU as TensoRF, 1024 on the CPU)",
            check=flag_types.non_negative_int(MAX_BATCH, "rays", zero_means="the default"),
        ),
    )
    step_ratio: float = 0.5
    grid_init: int = dataclasses.field(
        default=0,
        metadata=flag(f"initial grid resolution per axis, {MIN_GRID} to {flag_types.MAX_GRID} (default: from image size)", check=_GRID),
    )
    grid_final: int = dataclasses.field(
        default=0,
        metadata=flag(
            f"final grid resolution per axis, {MIN_GRID} to {flag_types.MAX_GRID}, at least --grid-init (default: from image size)",
            check=_GRID,
        ),
    )
    occupancy_resolution: int = 128
    occupancy_every: int = 16
    occupancy_warmup: int = 16
    occupancy_threshold: float = 1e-3
    cone_angle: float = dataclasses.field(
        default=0.0,
        metadata=flag(
            "cone stepping: steps grow as distance x this, 0 to 1 (default: 0, fixed steps)", check=flag_types.finite_float_in(0, 1)
        ),
    )
    slimmable: bool = dataclasses.field(
        default=False,
        metadata=flag(
            "train with SlimmeRF's rank incrementation so the field renders well at every rank (see slim, eval --ranks)"
        ),
    )
    upsilon: float | None = dataclasses.field(
        default=None,
        metadata=flag(
            "--slimmable: add a rank when the batch loss changes by more than this fraction between steps "
            f"(above 0, at most {MAX_UPSILON}; default: 0.4, or 0.1 on forward-facing scenes)",
            check=flag_types.real(0, MAX_UPSILON, low_open=True, noun="a fraction"),
        ),
    )
    eta: int | None = dataclasses.field(
        default=None,
        metadata=flag(
            f"--slimmable: least steps between two rank increments, 0 to {MAX_ETA:,} (default: 0, or 100 forward-facing)",
            check=flag_types.non_negative_int(MAX_ETA, "steps"),
        ),
    )
    decoder: str | None = dataclasses.field(
        default=None, metadata=flag("appearance decoder (default: TensoRF's MLP)", choices=["mlp", "sh"])
    )
    appearance: str = dataclasses.field(
        default="auto",
        metadata=flag(
            "per-image appearance codes for the MLP decoder, which explain exposure and white-balance changes "
            "between photos (auto: on for photo folders, videos and COLMAP projects, off for Blender, LLFF "
            "and scenes with alpha masks, and with --decoder sh)",
            choices=["auto", "on", "off"],
        ),
    )
    contraction: str = dataclasses.field(
        default="auto",
        metadata=flag(
            "model all of space, the room behind an object included, by contracting what lies outside a "
            "foreground ball around the object into a shell (mip-NeRF 360) (auto: on for photo folders, "
            "videos and COLMAP projects that look around an object, off for Blender scenes, scenes with "
            "alpha masks and forward-facing captures, which keep their box or NDC)",
            choices=["auto", "on", "off"],
        ),
    )
    distortion: float | None = dataclasses.field(
        default=None,
        metadata=flag(
            "weight of mip-NeRF 360's distortion loss, which pulls each ray's weights together and so removes "
            f"floaters, 0 to 1 (default: {DISTORTION_WEIGHT} for unbounded scenes, 0 for the others)",
            check=flag_types.finite_float_in(0, 1),
        ),
    )
    depth_supervision: str = dataclasses.field(
        default="auto",
        metadata=flag(
            "pull the field's depth to the points structure from motion triangulated, along the rays of the "
            "training photos that observed them (DS-NeRF's idea; auto: on when the scene has them, i.e. photo "
            "folders, videos and COLMAP projects that are not forward-facing)",
            choices=["auto", "on", "off"],
        ),
    )
    refine_poses: str = dataclasses.field(
        default="off",
        metadata=flag(
            "optimize a correction of every training camera's pose with the field, with a coarse-to-fine "
            "schedule (Cheng et al. 2024); the refined poses are saved in the run (transforms.json) and used by "
            "view, render and export-mesh (auto: on for SfM poses, i.e. photo folders, videos and COLMAP projects; "
            "off for Blender, LLFF and scenes with alpha masks; default: off, as the held-out views of a photo "
            "folder keep their unrefined SfM poses, and on the sculpture capture that cost 1 dB)",
            choices=["auto", "on", "off"],
        ),
    )
    pose_blur: str = dataclasses.field(
        default="on",
        metadata=flag(
            "with pose refinement: blur the field's factors and the target images during the first third of "
            "the run (on, the paper's schedule), or refine without it (off, for comparison)",
            choices=["on", "off"],
        ),
    )
    init_from: str | None = dataclasses.field(
        default=None,
        metadata=flag(
            "--field gaussians: start from Gaussians fitted to a trained run of a bounded scene (its run folder; any "
            "field), placed where its rays meet surfaces, instead of from the scene's SfM points or its visual hull"
        ),
    )
    init_splats: str | None = dataclasses.field(
        default=None,
        metadata=flag(
            "--field gaussians: start from the Gaussians of a 3DGS .ply in the scene's frame (such as export-splats "
            "writes), to fine-tune them on the scene",
            check=flag_types.extension(".ply"),
        ),
    )
    #: the run folder a distillation learns from (`tensorfields distill`; not a train flag)
    teacher: str | None = None
    checkpoint_every: float | None = dataclasses.field(
        default=None,
        metadata=flag(
            "seconds between checkpoints, so a kill loses at most this much (default: a tenth of the run, "
            "5 to 60 s; the first one comes after one interval, the last before the final evaluation); "
            f"0 (every iteration) to {flag_types.MAX_SECONDS:,}",
            check=flag_types.finite_float_in(0, flag_types.MAX_SECONDS, "seconds"),
        ),
    )
    seed: int = dataclasses.field(
        default=0, metadata=flag(f"random seed, 0 to {MAX_SEED} (default: 0)", check=flag_types.non_negative_int(MAX_SEED))
    )
    device: str | None = dataclasses.field(
        default=None, metadata=flag("cpu, cuda or cuda:N (default: cuda when available)", check=flag_types.device)
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _flag_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(TrainConfig) if "help" in f.metadata]


def _base_type(annotation: Any) -> type:
    """`float | None` -> float; `int` -> int."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Declare every flagged `TrainConfig` field on `parser` (`--batch-size` for batch_size)."""
    hints = typing.get_type_hints(TrainConfig)
    for f in _flag_fields():
        name = "--" + f.name.replace("_", "-")
        kind = _base_type(hints[f.name])
        if kind is bool:
            parser.add_argument(name, action="store_true", help=f.metadata["help"])
            continue
        options: dict[str, Any] = {"type": f.metadata.get("check") or kind, "help": f.metadata["help"]}
        if f.metadata["choices"]:
            options["choices"] = f.metadata["choices"]
        if f.metadata["required"]:
            options["required"] = True
        else:
            options["default"] = f.default
        parser.add_argument(name, **options)


def config_from_args(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    """A TrainConfig from the flags `add_flags` declared, then `overrides`.

    Raises:
        ValueError: flags that are fine alone but not together (--grid-init above --grid-final).
    """
    values = {f.name: getattr(args, f.name) for f in _flag_fields() if hasattr(args, f.name)}
    config = TrainConfig(**{**values, **overrides})
    if config.grid_init and config.grid_final and config.grid_init > config.grid_final:
        raise ValueError(
            f"--grid-init {config.grid_init} is above --grid-final {config.grid_final}: the grid only grows during training"
        )
    for name in ("init_from", "init_splats"):
        if getattr(config, name) is not None and config.field != "gaussians":
            raise ValueError(f"--{name.replace('_', '-')} starts a Gaussian field: it needs --field gaussians, not '{config.field}'")
    if config.init_from is not None and config.init_splats is not None:
        raise ValueError("--init-from and --init-splats are two ways to start the Gaussians: give one")
    if config.appearance == "on" and config.decoder == "sh":
        raise ValueError("--appearance on needs the MLP decoder: the SH decoder (--decoder sh) cannot take appearance codes")
    return config


def uses_appearance_codes(config: TrainConfig, scene: Scene) -> bool:
    """Whether a run of `config` on `scene` trains per-image appearance codes: `--appearance on`
    or off, or for auto, whether the scene's images are photos (`PHOTO_KINDS`, without alpha
    masks) and the decoder is the MLP."""
    if config.appearance != "auto":
        return config.appearance == "on"
    return config.decoder != "sh" and scene.kind in PHOTO_KINDS and scene.alpha is None


def uses_contraction(config: TrainConfig, scene: Scene) -> bool:
    """Whether a run of `config` on `scene` contracts space (`render.contraction`): `--contraction
    on` or off, or for auto, whether the scene's images are photos (`PHOTO_KINDS`, without alpha
    masks) that look around something rather than forward (not NDC).

    Raises:
        ValueError: `--contraction on` for a forward-facing (NDC) scene.
    """
    if scene.ndc and config.contraction == "on":
        raise ValueError(
            f"{scene.source}: --contraction on needs a scene the cameras look around; this one is forward-facing "
            "and trains in NDC, which already reaches to infinity"
        )
    if config.contraction != "auto":
        return config.contraction == "on"
    return not scene.ndc and scene.kind in PHOTO_KINDS and scene.alpha is None


def distortion_weight(config: TrainConfig, contracted: bool) -> float:
    """The distortion loss's weight for a run of `config`: `--distortion`, else
    `DISTORTION_WEIGHT` when space is contracted (`uses_contraction`) and 0 otherwise."""
    if config.distortion is not None:
        return config.distortion
    return DISTORTION_WEIGHT if contracted else 0.0


def supervises_depth(config: TrainConfig, scene: Scene) -> bool:
    """Whether a run of `config` on `scene` adds the depth loss of its SfM keypoints
    (`strategies.DepthSupervision`): `--depth-supervision on` or off, or for auto, whether the
    scene has keypoints of its training images and is not forward-facing (NDC rays have no
    world distances).

    Raises:
        ValueError: `--depth-supervision on` for a scene without keypoints, or a forward-facing one.
    """
    usable = len(scene.split_keypoints("train")) > 0 and not scene.ndc
    if config.depth_supervision == "on" and not usable:
        why = "is forward-facing (NDC)" if scene.ndc else "has no SfM keypoints of its training images"
        raise ValueError(f"{scene.source}: --depth-supervision on, but the scene {why}; photo folders, videos and COLMAP projects have them")
    if config.depth_supervision != "auto":
        return config.depth_supervision == "on"
    return usable


def refines_poses(config: TrainConfig, scene: Scene) -> bool:
    """Whether a run of `config` on `scene` refines its camera poses: `--refine-poses on` or off,
    or for auto, whether the poses come from structure from motion (`PHOTO_KINDS` without alpha
    masks: photo folders, videos, COLMAP projects), not from a renderer or LLFF's release."""
    if config.refine_poses != "auto":
        return config.refine_poses == "on"
    return scene.kind in PHOTO_KINDS and scene.alpha is None
