"""Ray marching, compositing, factor-sampling, Strivec tri-vector, Gaussian-mixture and hash-encoding ops.

Public functions validate their arguments and dispatch to the native extension (C++ on the CPU,
CUDA on NVIDIA GPUs; built lazily on first use, see `status()`) when it is available, and to the
pure-torch `cuda_ext.reference` otherwise; both share signatures and packed layouts.
"""

from ._backend import reference_forced, status
from .factor_ops import cp_sample, vm_sample
from .gaussian_ops import gaussian_mix
from .hash_ops import hash_encode
from .ops import composite, march_rays, ray_aabb_intersect, render_transmittance, update_occupancy
from .reference import hash_level_resolutions, packed_info_from_counts
from .trivec_ops import trivec_neighbors, trivec_sample

__all__ = [
    "status",
    "reference_forced",
    "ray_aabb_intersect",
    "march_rays",
    "packed_info_from_counts",
    "render_transmittance",
    "composite",
    "update_occupancy",
    "vm_sample",
    "cp_sample",
    "trivec_neighbors",
    "trivec_sample",
    "gaussian_mix",
    "hash_encode",
    "hash_level_resolutions",
]
