"""The optimizer of a training run, and the two ways a strategy changes the parameters under it
while keeping Adam's state for what survives (as gsplat's `strategy/ops.py` does):

- `restructure`: the same parameters with new shapes (upsample, shrink, prune, slim). The
  change must not read parameter values, only shapes and boxes, so it is applied to the Adam
  moments too: each moment is put into a copy of the field in place of its parameter, the copy
  goes through the same change, and the moments are read back by parameter name (a crop or a
  pruning keeps exactly the moments of what survives). With `keep_state=False` the changed
  parameters start afresh instead (TensoRF restarts Adam at each upsample, with its
  learning-rate reset).
- `replace_field`: a new field (Strivec's placement); parameters `keep` names, present in both
  with the same shape, keep their state; the rest start from zero.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

from fields import Field

__all__ = ["make_optimizer", "restructure", "replace_field", "BETAS"]

#: TensoRF's Adam betas
BETAS = (0.9, 0.99)
_MOMENTS = ("exp_avg", "exp_avg_sq")


def make_optimizer(field: Field, lr_scale: float = 1.0) -> torch.optim.Adam:
    """Adam over `field.param_groups()`: each group keeps its base rate as "initial_lr" and
    starts at base x `lr_scale`."""
    groups = [{**group, "initial_lr": group["lr"], "lr": group["lr"] * lr_scale} for group in field.param_groups()]
    return torch.optim.Adam(groups, betas=BETAS, fused=True)


def _named_states(field: Field, optimizer: torch.optim.Optimizer) -> dict[str, dict[str, torch.Tensor]]:
    return {name: optimizer.state[p] for name, p in field.named_parameters() if optimizer.state.get(p)}


def _rebuilt(field: Field, optimizer: torch.optim.Optimizer, states: dict[str, dict[str, torch.Tensor]]) -> torch.optim.Adam:
    """A new Adam over `field` with `optimizer`'s current rates (by group name) and `states` by parameter name."""
    rates = {group["name"]: group["lr"] for group in optimizer.param_groups}
    new = make_optimizer(field)
    for group in new.param_groups:
        group["lr"] = rates.get(group["name"], group["lr"])
    for name, param in field.named_parameters():
        state = states.get(name)
        if state is not None and all(state[key].shape == param.shape for key in _MOMENTS):
            new.state[param] = state
    return new


@torch.no_grad()
def restructure(
    field: Field, optimizer: torch.optim.Optimizer, change: Callable[[Field], Any], keep_state: bool = True
) -> tuple[Field, torch.optim.Adam, Any]:
    """Apply `change` (in place, or returning a new field) to `field` and to its Adam moments.

    Returns the changed field, the optimizer over it (the same rates; with `keep_state` the
    moments carried through the change, their step counts kept) and what `change` returned.
    """
    states = _named_states(field, optimizer) if keep_state else {}
    moments: dict[str, dict[str, torch.Tensor]] = {}
    for key in _MOMENTS if states else ():
        shadow = copy.deepcopy(field)
        for name, param in shadow.named_parameters():
            param.data = states[name][key] if name in states else torch.zeros_like(param)
        changed = change(shadow)
        shadow = changed if isinstance(changed, Field) else shadow
        moments[key] = {name: param.data for name, param in shadow.named_parameters()}
    result = change(field)
    new_field = result if isinstance(result, Field) else field
    carried = {
        name: {"step": states[name]["step"], **{key: moments[key][name] for key in _MOMENTS}}
        for name, _ in new_field.named_parameters()
        if name in states
    }
    return new_field, _rebuilt(new_field, optimizer, carried), result


def replace_field(
    old: Field, new: Field, optimizer: torch.optim.Optimizer, keep: Callable[[str], bool]
) -> torch.optim.Adam:
    """The optimizer for `new`, which replaces `old`: the state of parameters whose name `keep`
    accepts is carried over where the shapes agree; everything else starts afresh."""
    states = {name: state for name, state in _named_states(old, optimizer).items() if keep(name)}
    return _rebuilt(new, optimizer, states)
