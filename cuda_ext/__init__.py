"""Ray marching and compositing ops.

The public functions here dispatch to the native extension when it is built (a later step) and
to `cuda_ext.reference` otherwise; both share signatures and packed layouts.
"""

from .reference import (
    composite,
    march_rays,
    packed_info_from_counts,
    ray_aabb_intersect,
    render_transmittance,
    update_occupancy,
)

__all__ = [
    "ray_aabb_intersect",
    "march_rays",
    "packed_info_from_counts",
    "render_transmittance",
    "composite",
    "update_occupancy",
]
