"""Per-image appearance codes (NeRF-W's appearance embeddings, nerfacto's camera embeddings).

Photos of one scene differ in exposure and white balance; a field with one colour per point
can only fake that with floaters. A code per training image, fed to the colour decoder beside
the features, explains it instead: it changes the colour of every sample of that image's rays
and never their density.

Which code colours a sample is given by `code`, the same argument everywhere (`Rays.code`,
`Field.radiance`, `Field.query`):

- an int64 tensor `[N]`: indices into the training images' codes (training rays);
- a float tensor `[N, E]` (or `[E]`, one code for all): the codes themselves (a code fitted to a
  held-out view);
- None: the mean of the training images' codes (held-out views, videos, the viewer, exports).

Fields without codes ignore `code`.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AppearanceCodes", "codes_of", "APPEARANCE_CODE_DIM", "LR_CODES"]

#: width of a code (nerfacto's 32)
APPEARANCE_CODE_DIM = 32
#: Adam's base learning rate of the codes (nerfacto's field rate): each code sees only the rays
#: of its image, about 1% of a batch of a 100-image scene
LR_CODES = 1e-2


class AppearanceCodes(nn.Module):
    """One learned code per training image, `weight [count, dim]`, starting at zero (every image
    looks alike until the images say otherwise; the mean code stays the typical look)."""

    def __init__(self, count: int, dim: int = APPEARANCE_CODE_DIM) -> None:
        super().__init__()
        if count < 1 or dim < 1:
            raise ValueError(f"appearance codes need a count and a width >= 1, got {count} and {dim}")
        self.weight = nn.Parameter(torch.zeros(count, dim))

    @property
    def dim(self) -> int:
        return self.weight.shape[1]

    def mean(self) -> torch.Tensor:
        """The mean code over the training images, `[dim]`."""
        return self.weight.mean(dim=0)

    def forward(self, code: torch.Tensor | None, count: int) -> torch.Tensor:
        """The codes of `count` samples, `[count, dim]`, for `code` as the module docstring says."""
        if code is None:
            return self.mean().expand(count, -1)
        if code.is_floating_point():
            return code.to(self.weight.dtype).expand(count, -1)
        return self.weight[code]


def codes_of(field: nn.Module) -> AppearanceCodes | None:
    """The appearance codes of `field` (its `codes`), or None when it has none."""
    codes = getattr(field, "codes", None)
    return codes if isinstance(codes, AppearanceCodes) else None
