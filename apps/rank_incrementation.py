"""SlimmeRF's Tensorial Rank Incrementation (TRaIn): grow the active rank while training.

Training starts at rank 1 (one density and three appearance components per group, see
`fields.slimming`) and adds one rank whenever the batch loss changes abruptly between
consecutive steps, |L_{t-1} - L_t| / L_t > upsilon, at least `eta` steps after the previous
increment, until the full rank is reached. SlimmeRF uses upsilon 0.4, eta 0 on synthetic scenes
and upsilon 0.1, eta 100 on forward-facing ones.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RankIncrementation"]


@dataclass(frozen=True)
class RankIncrementation:
    """When to add a rank: relative loss change above `upsilon`, more than `eta` steps apart."""

    upsilon: float = 0.4
    eta: int = 0

    @classmethod
    def for_scene(cls, forward_facing: bool, upsilon: float | None = None, eta: int | None = None) -> "RankIncrementation":
        """SlimmeRF's settings for the kind of scene; explicit `upsilon` / `eta` override them."""
        default = cls(0.1, 100) if forward_facing else cls(0.4, 0)
        return cls(default.upsilon if upsilon is None else upsilon, default.eta if eta is None else eta)

    def __post_init__(self) -> None:
        if self.upsilon <= 0:
            raise ValueError(f"--upsilon must be positive, got {self.upsilon}")
        if self.eta < 0:
            raise ValueError(f"--eta must be at least 0, got {self.eta}")

    def relative_change(self, previous_loss: float, loss: float) -> float:
        """|previous - loss| / loss, the quantity compared with upsilon."""
        return abs(previous_loss - loss) / max(loss, 1e-12)

    def due(self, previous_loss: float | None, loss: float, iteration: int, last_increment: int) -> bool:
        """Whether step `iteration` (whose batch loss is `loss`) adds a rank."""
        if previous_loss is None or iteration - last_increment <= self.eta:
            return False
        return self.relative_change(previous_loss, loss) > self.upsilon
