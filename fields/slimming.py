"""Slimmable ranks (SlimmeRF): rank-ordered components that render at, and truncate to, any rank.

A rank-ordered field groups its components (density and appearance, per VM pair, per Strivec
scale, ...) and keeps, at active rank `r` of `ranks`, the first `ceil(r * C / ranks)` of each
group of `C` components: density groups as wide as `ranks` keep `r`, appearance groups three
times as wide keep `3r`, as SlimmeRF's rank 1 / 3 start and +1 / +3 increments. Components above
the active rank are scaled by `rank_epsilon`: 0 when rendering (test-time slimming), SlimmeRF's
1e-6 while training with Tensorial Rank Incrementation (so they still receive gradient).
`slim(r)` returns a smaller field of the same class that renders as the masked one does at `r`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["RankOrdered", "active_components", "TRAIN_EPSILON"]

#: SlimmeRF's scale of the components above the active rank during training
TRAIN_EPSILON = 1e-6


def active_components(rank: int, components: int, ranks: int) -> int:
    """Components of a group of `components` kept at `rank` of `ranks`: ceil(rank * components / ranks)."""
    return min(components, math.ceil(rank * components / ranks))


class RankOrdered:
    """Mixin for `Field` subclasses with rank-ordered components (implements `fields.base.Slimmable`).

    Subclasses call `_init_ranks(ranks, active_rank)` in their constructor, multiply each group
    of components by `rank_mask(C, like)` where they evaluate it, add `active_rank` to their
    `config()` (via `rank_config()`), and implement `_slimmed_config(rank)` (constructor
    arguments that change) and `_slimmed_state(rank)` (the truncated state dict).
    """

    ranks: int
    active_rank: int
    rank_epsilon: float

    def _init_ranks(self, ranks: int, active_rank: int | None) -> None:
        self.ranks = int(ranks)
        self.rank_epsilon = 0.0
        self.active_rank = self.ranks
        if active_rank is not None:
            self.set_active_rank(active_rank)

    def set_active_rank(self, rank: int) -> None:
        """Render (and train) with the first `rank` of `ranks` components of every group."""
        rank = int(rank)
        if not 1 <= rank <= self.ranks:
            raise ValueError(f"rank {rank} is out of range: this field has ranks 1 to {self.ranks}")
        self.active_rank = rank

    def active(self, components: int) -> int:
        """Active components of a group of `components` at the current rank."""
        return active_components(self.active_rank, components, self.ranks)

    def rank_mask(self, components: int, like: torch.Tensor) -> torch.Tensor | None:
        """`[components]` scales of a group (1 for active components, `rank_epsilon` above),
        with `like`'s dtype and device; None when every component is active."""
        kept = self.active(components)
        if kept == components:
            return None
        mask = torch.full((components,), self.rank_epsilon, dtype=like.dtype, device=like.device)
        mask[:kept] = 1.0
        return mask

    def rank_config(self) -> dict[str, Any]:
        """The `active_rank` entry of `config()` (None at full rank)."""
        return {"active_rank": None if self.active_rank == self.ranks else self.active_rank}

    def slim(self, rank: int) -> Any:
        """A new field keeping the first components of every group at `rank` (masks dropped).

        It renders as this field does with `set_active_rank(rank)` and `rank_epsilon = 0`.
        """
        rank = int(rank)
        if not 1 <= rank <= self.ranks:
            raise ValueError(f"cannot slim to rank {rank}: this field has ranks 1 to {self.ranks}")
        config = {**self.config(), **self._slimmed_config(rank), "active_rank": None}
        slimmed = type(self).from_config(config)  # type: ignore[attr-defined]
        slimmed.load_state_dict(self._slimmed_state(rank))
        return slimmed.to(self.aabb.device)  # type: ignore[attr-defined]

    def _slimmed_config(self, rank: int) -> dict[str, Any]:
        raise NotImplementedError

    def _slimmed_state(self, rank: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError
