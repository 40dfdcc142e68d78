"""TensoRF's training schedule, expressed in training progress (0..1) so it fits any length.

TensoRF (30k iterations) upsamples the grid at 2k/3k/4k/5.5k/7k, updates its alpha mask at 2k
and 4k (shrinking the box at the first), switches the L1 weight at the shrink, decays learning
rates exponentially to 0.1x over the run and resets them at each upsample. Here each of those
happens at the same fraction of the run, whether the run is counted in iterations or seconds.

Two changes for short runs. The box is shrunk to the occupied region at every milestone and
before every upsample, not only once: at 2k/30k of a short run the density is still cloudy, so
a single early shrink barely shrinks. Shrinking is exact (the field is unchanged inside the new
box); grid sizes are voxel counts of the scene's full box, so a shrunk box keeps the voxel size
and needs fewer voxels. And a budget run upsamples no earlier than a `min_iterations`-long run
would (see `Schedule.min_iterations`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Schedule"]

_TENSORF_ITERS = 30000.0


@dataclass
class Schedule:
    """Milestones as fractions of the run, and the grid sizes they lead to.

    grid_init, grid_final: grid resolution per axis (cube root of the voxel count) at the start
    and after the last upsample; upsample_at: progress of each upsample (the box is shrunk to
    the occupied region right before each); lr_decay: total learning-rate decay over a run;
    min_iterations: budget runs reach milestone p no earlier than iteration p * min_iterations.
    """

    grid_init: int = 64
    grid_final: int = 128
    upsample_at: list[float] = field(default_factory=lambda: [i / _TENSORF_ITERS for i in (2000, 3000, 4000, 5500, 7000)])
    lr_decay: float = 0.1
    min_iterations: int = 1500

    def voxel_counts(self) -> list[int]:
        """Voxel count after each upsample (log-spaced from grid_init^3 to grid_final^3)."""
        start, end, steps = math.log(self.grid_init**3), math.log(self.grid_final**3), len(self.upsample_at)
        return [round(math.exp(start + (end - start) * (i + 1) / steps)) for i in range(steps)]

    def lr_scale(self, progress: float, last_reset: float) -> float:
        """Learning-rate multiplier: lr_decay ** (progress since the last reset)."""
        return self.lr_decay ** max(0.0, progress - last_reset)
