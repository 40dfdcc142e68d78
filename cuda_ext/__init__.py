"""Ray marching, compositing and factor-sampling ops.

Public functions validate their arguments and dispatch to the native extension (C++ on the CPU,
CUDA on NVIDIA GPUs; built lazily on first use, see `status()`) when it is available, and to the
pure-torch `cuda_ext.reference` otherwise; both share signatures and packed layouts.
"""

from ._backend import status
from .ops import cp_sample, march_rays, vm_sample
from .reference import (
    composite,
    packed_info_from_counts,
    ray_aabb_intersect,
    render_transmittance,
    update_occupancy,
)

__all__ = [
    "status",
    "ray_aabb_intersect",
    "march_rays",
    "packed_info_from_counts",
    "render_transmittance",
    "composite",
    "update_occupancy",
    "vm_sample",
    "cp_sample",
]
