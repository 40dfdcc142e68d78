"""The Field interface every scene representation implements, and its capability protocols."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["Field", "Upsampleable", "Slimmable", "Placeable"]


class Field(nn.Module):
    """A radiance field living in an axis-aligned box.

    Subclasses implement `density` and `radiance` (or a fused `query`), `config`, and may add
    regularizers and capabilities. `aabb` is a buffer, `[2, 3]` (min, max) in world units.
    """

    #: registry name used in checkpoints and on the command line ("vm", "cp", ...)
    name: str = ""
    aabb: torch.Tensor

    def density(self, x: torch.Tensor) -> torch.Tensor:
        """Volume density sigma >= 0 (per world unit) at world points `x [N, 3]` -> `[N]`."""
        raise NotImplementedError

    def radiance(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] at points `x [N, 3]` seen along unit directions `d [N, 3]` -> `[N, 3]`."""
        raise NotImplementedError

    def query(self, x: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density `[N]` and RGB `[N, 3]` at once. Fields may fuse the two."""
        return self.density(x), self.radiance(x, d)

    def regularization(self) -> dict[str, torch.Tensor]:
        """The field's own losses (L1, TV, ...), already weighted. Empty by default."""
        return {}

    def param_groups(self, lr: float, lr_network: float) -> list[dict[str, Any]]:
        """Optimizer groups: grid factors at `lr`, networks/bases at `lr_network`."""
        return [{"params": list(self.parameters()), "lr": lr, "name": "all"}]

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments; `type(self).from_config(cfg)` rebuilds the field."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "Field":
        return cls(**cfg)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def nbytes(self) -> int:
        """Bytes of parameters and persistent buffers, as a checkpoint of this field stores them
        (non-persistent buffers, such as lookup tables rebuilt on load, are not counted)."""
        return sum(t.numel() * t.element_size() for t in self.state_dict().values())


@runtime_checkable
class Upsampleable(Protocol):
    """Grid fields whose factor resolution can grow and whose box can shrink."""

    def upsample(self, resolution: list[int]) -> None: ...

    def shrink(self, aabb: torch.Tensor) -> None: ...


@runtime_checkable
class Slimmable(Protocol):
    """Rank-ordered fields that can render at, and be truncated to, a lower rank."""

    ranks: int

    def set_active_rank(self, rank: int) -> None: ...

    def slim(self, rank: int) -> Field: ...


@runtime_checkable
class Placeable(Protocol):
    """Fields whose structure is placed where a coarse estimate of the scene is occupied
    (Strivec's local tensors). Trainers fit a coarse VM first, build the field from its occupancy
    grid with `from_occupancy`, and later `prune` what ends up empty."""

    @classmethod
    def from_occupancy(cls, occupied: torch.Tensor, grid_aabb: torch.Tensor, **kwargs: Any) -> Field: ...

    def prune(self, occupied: torch.Tensor, grid_aabb: torch.Tensor) -> int: ...
