"""tiny-cuda-nn's fused hash grid and MLPs behind the hash-grid field's interface (CUDA only).

`tinycudann` is imported when a `TcnnHashGrid` is built, never when this module is. The
encoding is tiny-cuda-nn's "HashGrid" with the field's levels, features, table size, base
resolution and per-level scale b = (finest / base)^(1 / (L - 1)); it places a level's vertices
half a cell apart from `cuda_ext.hash_encode` (tiny-cuda-nn's resolution is ceil(base b^l - 1) + 1
and its positions are offset by 0.5), so the two backends compute the same kind of function, not
the same numbers. The MLPs are "FullyFusedMLP"s (half precision; widths 16, 32, 64 or 128)
with the torch backend's layer widths, the colour MLP's sigmoid fused as its output activation.

State: each tiny-cuda-nn module keeps all its weights in one flat float32 vector `params`, so a
field's state dict holds `tcnn.encoding.params`, `tcnn.density_net.params` and
`tcnn.colour_net.params` in place of the torch backend's `table` and `nn.Linear` weights.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["TcnnHashGrid", "encoding_config", "network_config"]


def encoding_config(levels: int, features: int, log2_table_size: int, base: float, finest: float) -> dict[str, Any]:
    """tiny-cuda-nn's "HashGrid" config for the hash-grid field's level settings."""
    scale = 1.0 if levels == 1 else math.exp((math.log(finest) - math.log(base)) / (levels - 1))
    return {
        "otype": "HashGrid",
        "n_levels": levels,
        "n_features_per_level": features,
        "log2_hashmap_size": log2_table_size,
        "base_resolution": base,
        "per_level_scale": scale,
    }


def network_config(hidden: int, hidden_layers: int, output_activation: str = "None") -> dict[str, Any]:
    """tiny-cuda-nn's "FullyFusedMLP" config: ReLU, `hidden_layers` layers of `hidden` neurons."""
    return {
        "otype": "FullyFusedMLP",
        "activation": "ReLU",
        "output_activation": output_activation,
        "n_neurons": hidden,
        "n_hidden_layers": hidden_layers,
    }


class TcnnHashGrid(nn.Module):
    """The encoding `encode(xn [N, 3] in [0, 1]) -> [N, L * F]`, the density MLP
    `density([N, L * F]) -> [N, density_out]` (one hidden layer) and the colour MLP
    `colour([N, colour_in]) -> RGB [N, 3]` (two hidden layers, sigmoid), all in float32 out."""

    def __init__(self, levels: int, features: int, log2_table_size: int, base: float, finest: float,
                 hidden: int, density_out: int, colour_in: int) -> None:  # fmt: skip
        super().__init__()
        try:
            import tinycudann as tcnn
        except Exception as error:  # ImportError, or a build whose CUDA library does not load
            raise RuntimeError(f"the tcnn hash-grid backend needs tinycudann, which does not import ({error}); use backend 'torch'") from None
        if not torch.cuda.is_available():
            raise RuntimeError("the tcnn hash-grid backend needs a CUDA GPU; use backend 'torch'")
        self.encoding = tcnn.Encoding(3, encoding_config(levels, features, log2_table_size, base, finest), seed=1337)
        self.density_net = tcnn.Network(levels * features, density_out, network_config(hidden, 1), seed=1338)
        self.colour_net = tcnn.Network(colour_in, 3, network_config(hidden, 2, "Sigmoid"), seed=1339)

    @staticmethod
    def _run(module: nn.Module, inputs: torch.Tensor, width: int) -> torch.Tensor:
        if inputs.shape[0] == 0:  # tiny-cuda-nn refuses empty batches
            return inputs.new_zeros(0, width, dtype=torch.float32)
        return module(inputs.contiguous()).float()

    def encode(self, xn: torch.Tensor) -> torch.Tensor:
        return self._run(self.encoding, xn, self.encoding.n_output_dims)

    def density(self, encoded: torch.Tensor) -> torch.Tensor:
        return self._run(self.density_net, encoded, self.density_net.n_output_dims)

    def colour(self, inputs: torch.Tensor) -> torch.Tensor:
        return self._run(self.colour_net, inputs, 3)
