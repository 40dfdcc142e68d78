"""TensoRF's factorized grid fields: vector-matrix (VM) and CANDECOMP/PARAFAC (CP)."""

from .cp import CPField
from .grid import TensorGridField, resolution_for_voxels
from .vm import LINE_AXES, PLANE_AXES, VMField

__all__ = ["TensorGridField", "VMField", "CPField", "resolution_for_voxels", "PLANE_AXES", "LINE_AXES"]
