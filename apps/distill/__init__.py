"""Distillation between fields (Progressive Volume Distillation); now at points, used to start a
freshly placed tri-vector field from the coarse VM it replaces."""

from .points import distill_at_points, occupied_point_sampler

__all__ = ["distill_at_points", "occupied_point_sampler"]
