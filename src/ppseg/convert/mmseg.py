"""Read MMSegmentation ``.pth`` checkpoints and rename their keys to the Paddle layout.

MMSeg's ``projects/pp_mobileseg`` port stores the same tensors as the Paddle
checkpoints under different module names (ConvModule's ``conv``/``bn`` instead
of Paddle's ``c``/``bn``, ``nn.Sequential`` indices, ...) and PyTorch's BN
buffer names. :func:`mmseg_to_paddle` rewrites them into Paddle structured
names, so that both sources go through the one Paddle -> ppseg converter
(``paddle_to_torch_state``).

PP-MobileSeg (spec section 9.3), mmseg fragment -> Paddle fragment:

=====================================================  ===============================
``.mid_se.conv_act1.conv.`` / ``conv_act2.conv.``       ``.mid_se.conv1.`` / ``conv2.``
``.attn.stride_conv.conv.`` / ``.attn.stride_conv.bn.``  ``.attn.stride_conv.0.`` / ``.1.``
``.attn.proj.conv.`` / ``.attn.proj.bn.``                ``.attn.proj.1.c.`` / ``.1.bn.``
(same for ``proj_encode_row``, ``proj_encode_column``)
``.mlp.dwconv.conv.``                                    ``.mlp.dwconv.``
``<X>.conv.weight`` for X in stem ``conv``,              ``<X>.c.weight``
``expand_conv``, ``bottleneck_conv``, ``linear_conv``,
``to_q/k/v``, attention ``dwconv``, ``pwconv``,
``fc1``, ``fc2``
``running_mean`` / ``running_var``                       ``_mean`` / ``_variance``
``num_batches_tracked``                                  dropped (ppseg sets it to 0)
=====================================================  ===============================

Everything else (``pos_embed``, ``inj_module.*``, ``decode_head.*``, the
``backbone.``/``decode_head.`` prefixes) is the same in both.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..errors import PPSegError

__all__ = ["MMSEG_KEY_RULES", "read_mmseg", "mmseg_to_paddle", "mmseg_rules_for", "torch_load_error"]

Rule = tuple["re.Pattern[str]", str]


def _rules(*pairs: tuple[str, str]) -> tuple[Rule, ...]:
    return tuple((re.compile(p), r) for p, r in pairs)


_CONV_BN_LAYERS = "conv|expand_conv|bottleneck_conv|linear_conv|to_q|to_k|to_v|dwconv|pwconv|fc1|fc2"

# Applied in order, each at most once per key. The order matters: the MLP's plain
# depthwise conv (``mlp.dwconv.conv.*``) must lose its ``conv`` before the general
# ``<layer>.conv.weight -> <layer>.c.weight`` rule sees it.
_PP_MOBILESEG_RULES = _rules(
    (r"\.mid_se\.conv_act([12])\.conv\.", r".mid_se.conv\1."),
    (r"\.attn\.stride_conv\.conv\.", ".attn.stride_conv.0."),
    (r"\.attn\.stride_conv\.bn\.", ".attn.stride_conv.1."),
    (r"\.attn\.(proj|proj_encode_row|proj_encode_column)\.conv\.", r".attn.\1.1.c."),
    (r"\.attn\.(proj|proj_encode_row|proj_encode_column)\.bn\.", r".attn.\1.1.bn."),
    (r"\.mlp\.dwconv\.conv\.", ".mlp.dwconv."),
    (rf"\.({_CONV_BN_LAYERS})\.conv\.(weight|bias)$", r".\1.c.\2"),
)
_BN_RULES = _rules((r"\.running_mean$", "._mean"), (r"\.running_var$", "._variance"))

#: registry-name prefix -> key rules of the mmseg port of that model
MMSEG_KEY_RULES: dict[str, tuple[Rule, ...]] = {
    "pp_mobileseg": _PP_MOBILESEG_RULES,
}


def mmseg_rules_for(model_name: str | None) -> tuple[Rule, ...]:
    """The key rules for a registry name (longest matching prefix); PP-MobileSeg's when ``None``.

    PP-MobileSeg is the only model of this package that MMSeg ports.
    """
    if model_name is None:
        return _PP_MOBILESEG_RULES
    matches = [p for p in MMSEG_KEY_RULES if model_name.startswith(p)]
    if not matches:
        known = ", ".join(f"{p}*" for p in MMSEG_KEY_RULES)
        raise PPSegError(f"no MMSegmentation key mapping for model '{model_name}' (mmseg checkpoints are "
                         f"supported for: {known})")
    return MMSEG_KEY_RULES[max(matches, key=len)]


def read_mmseg(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of an MMSeg ``.pth`` (``{'state_dict': ..., 'meta': ...}`` or a bare state dict).

    Loaded with ``torch.load(weights_only=True)``: no code from the file runs.
    A ``module.`` prefix on every key (a DDP-wrapped save) is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise PPSegError(f"{path}: checkpoint file not found")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4" when given a .pdparams by mistake
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling problem is the file's fault
        raise PPSegError(torch_load_error(path, e)) from None
    if isinstance(obj, Mapping) and "state_dict" in obj:
        state = obj["state_dict"]
        where = "'state_dict'"
    else:
        state = obj
        where = "the file"
    if not isinstance(state, Mapping) or not state:
        raise PPSegError(f"{path}: not an MMSeg checkpoint ({where} is not a non-empty dict of tensors)")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise PPSegError(f"{path}: not an MMSeg checkpoint (entry {key!r} of {where} is a "
                             f"{type(value).__name__}, not a tensor)")
    state = dict(state)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def torch_load_error(path: str | Path, e: Exception) -> str:
    """One line for a failed ``torch.load(weights_only=True)``, without PyTorch's boilerplate."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    detail = " ".join(ln for ln in lines if not ln.startswith(_TORCH_BOILERPLATE))
    detail = detail.replace("WeightsUnpickler error:", "").strip() or (lines[0] if lines else type(e).__name__)
    hint = ""
    from .pdparams import is_pickle_file

    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if is_pickle_file(path) and head[2:4] != b"\x8a\x0a":
            hint = "; it is a plain pickle, e.g. a PaddlePaddle .pdparams"
    except OSError:  # pragma: no cover
        pass
    return f"{path}: not a readable PyTorch checkpoint ({detail[:200]}{hint})"


def mmseg_to_paddle(state: Mapping[str, torch.Tensor | np.ndarray], model_name: str | None = None,
                    ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Rename an mmseg state dict to Paddle structured names.

    Returns ``(arrays, origin)``: ``{paddle name: np.ndarray}`` and
    ``{paddle name: mmseg name}`` for the renamed entries (for error messages).
    ``num_batches_tracked`` entries are dropped. Two mmseg keys that map to the
    same Paddle name raise :class:`PPSegError`.
    """
    rules = mmseg_rules_for(model_name)
    out: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        new = key
        for pattern, repl in rules + _BN_RULES:
            new = pattern.sub(repl, new, count=1)
        if new in out:
            raise PPSegError(f"mmseg keys '{origin.get(new, new)}' and '{key}' both map to '{new}'")
        if isinstance(value, torch.Tensor):
            arr = (value.float() if value.dtype == torch.bfloat16 else value).detach().cpu().numpy()
        else:
            arr = np.asarray(value)
        out[new] = arr
        if new != key:
            origin[new] = key
    return out, origin
