"""Rename a Paddle state dict to a ppseg model's state dict.

ppseg models keep PaddleSeg's module names, so converting a checkpoint is a rename
of a few parameter suffixes (spec section 9.3), checked against the model:

* the bookkeeping entry ``StructuredToParameterName@@`` is dropped;
* BatchNorm ``_mean`` / ``_variance`` -> ``running_mean`` / ``running_var``;
* PReLU ``_weight`` -> ``weight``;
* ``nn.Linear`` weights are transposed (Paddle stores them ``[in, out]``);
* ``num_batches_tracked`` (absent in Paddle) is set to 0.

A suffix is renamed only when the checkpoint name itself is not a model key, so a
model that really has a parameter called ``_weight`` keeps it. Every checkpoint key
must land on a model key of the same shape and every model key must be filled;
otherwise :class:`~ppseg.errors.PPSegError` names the first offending key.

Example:
    >>> from ppseg.convert.pdparams import read_pdparams
    >>> converted = paddle_to_torch_state(read_pdparams("model.pdparams"), model)
    >>> model.load_state_dict(converted.state_dict)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import PPSegError

__all__ = ["ConvertedState", "paddle_to_torch_state"]

#: Bookkeeping entry of ``.pdparams`` files (internal parameter names), never a tensor.
STRUCTURED_NAMES_KEY = "StructuredToParameterName@@"

#: Paddle name suffix -> PyTorch name suffix, tried in order.
SUFFIX_RENAMES: tuple[tuple[str, str], ...] = (
    ("._mean", ".running_mean"),  # BatchNorm running mean
    ("._variance", ".running_var"),  # BatchNorm running variance
    ("._weight", ".weight"),  # PReLU slope
)

#: PyTorch BatchNorm buffer that Paddle does not have; filled with 0.
NUM_BATCHES_TRACKED = "num_batches_tracked"

_NO_DEFAULTS: Mapping[str, float] = MappingProxyType({})


@dataclass
class ConvertedState:
    """Result of :func:`paddle_to_torch_state`.

    Attributes:
        state_dict: Complete state dict for ``model.load_state_dict(..., strict=True)``.
        renamed: ``(checkpoint key, model key)`` for every key whose name changed.
        dropped: Checkpoint keys removed by a ``drop`` pattern.
        filled: Model keys missing from the checkpoint that were set from ``defaults``
            (``num_batches_tracked`` buffers are set to 0 without being listed).
        transposed: Model keys of ``nn.Linear`` weights transposed from Paddle's layout.
    """

    state_dict: dict[str, Tensor]
    renamed: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    transposed: list[str] = field(default_factory=list)


def _shape(shape: Sequence[int]) -> str:
    return str([int(s) for s in shape])


def _as_array(value: Any) -> np.ndarray | Tensor:
    return value.detach() if isinstance(value, Tensor) else np.asarray(value)


def _model_key(key: str, model_keys: Mapping[str, Tensor]) -> str | None:
    """The model key a checkpoint key lands on, or ``None``."""
    if key in model_keys:
        return key
    for paddle_suffix, torch_suffix in SUFFIX_RENAMES:
        if key.endswith(paddle_suffix):
            renamed = key[: -len(paddle_suffix)] + torch_suffix
            if renamed in model_keys:
                return renamed
    return None


def _is_linear_weight(model: nn.Module, key: str) -> bool:
    owner, _, name = key.rpartition(".")
    if name != "weight":
        return False
    try:
        return isinstance(model.get_submodule(owner), nn.Linear)
    except AttributeError:
        return False


def paddle_to_torch_state(
    state: Mapping[str, Any],
    model: nn.Module,
    *,
    drop: Sequence[str] = (),
    defaults: Mapping[str, float] = _NO_DEFAULTS,
) -> ConvertedState:
    """Convert a Paddle state dict (``{structured name: array}``) for ``model``.

    Args:
        state: Paddle structured names -> arrays (numpy arrays or tensors), e.g. a
            ``.pdparams`` file's content.
        model: The ppseg model the weights are for; its ``state_dict()`` names, shapes
            and dtypes are the target.
        drop: Regular expressions; checkpoint keys in which any of them is found
            (``re.search``) are dropped and reported, e.g. dead weights.
        defaults: Model key (or a regular expression matching whole model keys, as
            ``re.fullmatch``) -> constant, used to fill model keys the checkpoint
            lacks, e.g. ``{r"head\\.arm_list\\.\\d+\\._scale": 1.0}``.

    Returns:
        The converted state dict with reports of what was renamed, dropped, filled and
        transposed.

    Raises:
        PPSegError: If a checkpoint key has no counterpart in the model, two checkpoint
            keys land on the same model key, a shape differs, or a model key is
            neither in the checkpoint nor covered by ``defaults``.
    """
    model_keys: dict[str, Tensor] = dict(model.state_dict(keep_vars=True))
    drop_patterns = [re.compile(p) for p in drop]
    default_patterns = [(re.compile(p), float(v)) for p, v in defaults.items()]
    result = ConvertedState(state_dict={})
    source_of: dict[str, str] = {}

    for key, value in state.items():
        if key == STRUCTURED_NAMES_KEY:
            continue
        if any(p.search(key) for p in drop_patterns):
            result.dropped.append(key)
            continue
        target_key = _model_key(key, model_keys)
        if target_key is None:
            raise PPSegError(f"checkpoint key '{key}' has no counterpart in the model")
        if target_key in source_of:
            raise PPSegError(
                f"checkpoint keys '{source_of[target_key]}' and '{key}' both map to model key '{target_key}'"
            )
        target = model_keys[target_key]
        array = _as_array(value)
        transpose = array.ndim == 2 and _is_linear_weight(model, target_key)
        shape = tuple(array.shape[::-1]) if transpose else tuple(array.shape)
        if shape != tuple(target.shape):
            where = f"'{key}'" if target_key == key else f"'{key}' (model '{target_key}')"
            raise PPSegError(
                f"checkpoint key {where}: shape {_shape(shape)} in the checkpoint, "
                f"{_shape(target.shape)} in the model"
            )
        tensor = torch.as_tensor(array)
        if transpose:
            tensor = tensor.t()
            result.transposed.append(target_key)
        result.state_dict[target_key] = tensor.to(dtype=target.dtype, copy=True).contiguous()
        source_of[target_key] = key
        if target_key != key:
            result.renamed.append((key, target_key))

    for key, target in model_keys.items():
        if key in result.state_dict:
            continue
        if key.rpartition(".")[2] == NUM_BATCHES_TRACKED:
            result.state_dict[key] = torch.zeros_like(target, requires_grad=False)
            continue
        value = next((v for p, v in default_patterns if p.fullmatch(key)), None)
        if value is None:
            raise PPSegError(f"model key '{key}' missing from the checkpoint")
        result.state_dict[key] = torch.full_like(target, value, requires_grad=False)
        result.filled.append(key)

    # Model order, so the state dict reads like the model's own.
    result.state_dict = {key: result.state_dict[key] for key in model_keys}
    return result
