"""Scoring a model on held-out views: PSNR / SSIM (`metrics.py`), rendered views (`views.py`),
the appearance codes of held-out views (`appearance.py`), per-rank scores of slimmable fields
(`ranks.py`), estimated camera poses against true ones (`poses.py`)."""

from .appearance import APPEARANCE_MODES, appearance_protocol, fit_code
from .metrics import psnr, ssim
from .poses import align_poses, fit_poses, into_estimate, into_refined_frame, pose_errors
from .ranks import evaluate_ranks, parse_ranks, rank_table, slimmable_field
from .views import at_most_pixels, evaluate_views, evenly_spaced, normalized_depth, to_uint8

__all__ = [
    "APPEARANCE_MODES",
    "appearance_protocol",
    "fit_code",
    "psnr",
    "ssim",
    "evaluate_views",
    "at_most_pixels",
    "evenly_spaced",
    "normalized_depth",
    "to_uint8",
    "evaluate_ranks",
    "parse_ranks",
    "rank_table",
    "slimmable_field",
    "align_poses",
    "pose_errors",
    "into_estimate",
    "fit_poses",
    "into_refined_frame",
]
