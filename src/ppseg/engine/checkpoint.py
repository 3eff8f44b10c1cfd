"""Checkpoints: atomic writes, model-only weights files, and clear mismatch errors.

Two kinds of file, both ``torch.save`` dicts with ``"format": "ppseg"``:

* a *weights file* (``best_model.pt``, ``last_model.pt``, converter output):
  ``model`` (registry name), ``model_kwargs``, ``state_dict``, ``meta``;
* a *training checkpoint* (``checkpoints/latest.pt``): the same plus optimizer,
  scheduler, scaler, EMA, RNG states and the training position.

Every write goes to a temporary file in the same directory and is renamed over
the target, so a kill never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import PPSegError
from ..fileio import atomic_open

if TYPE_CHECKING:  # pragma: no cover
    from ..segmentor import Segmentor

FORMAT = "ppseg"


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temp file next to ``path``, fsync, then rename over it."""
    with atomic_open(path) as f:
        torch.save(obj, f)


def weights_file(model_name: str, model_kwargs: dict, state_dict: dict, **meta: Any) -> dict:
    return {"format": FORMAT, "model": model_name, "model_kwargs": dict(model_kwargs),
            "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}, "meta": meta}


def load_file(path: str | Path) -> dict:
    """Read a ppseg weights file or training checkpoint (safe: ``weights_only``)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best_model.pt", "last_model.pt", "checkpoints/latest.pt"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise PPSegError(f"{path}: a directory without best_model.pt, last_model.pt or checkpoints/latest.pt")
    if not path.is_file():
        raise PPSegError(f"{path}: checkpoint file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling problem is the file's fault
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PPSegError(f"{path}: not a readable ppseg checkpoint ({first[:200]})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or "state_dict" not in obj:
        raise PPSegError(f"{path}: not a ppseg checkpoint (expected a file written by 'ppseg train' or 'ppseg convert')")
    return obj


def load_weights(model: nn.Module, ckpt: dict, path: str | Path, model_name: str) -> None:
    """Load a checkpoint's weights into ``model``; any mismatch is one clear line."""
    saved_name = ckpt.get("model")
    state = ckpt["state_dict"]
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shape = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shape:
        origin = f"saved from model '{saved_name}'" if saved_name else "saved from another model"
        if saved_name and saved_name != model_name:
            detail = f"the config builds '{model_name}'"
        elif shape:
            k, a, b = shape[0]
            detail = f"key '{k}' has shape {list(a)} in the checkpoint but {list(b)} in the model"
            if k.endswith(("weight", "bias")) and a and b and a[1:] == b[1:]:
                detail += " (different num_classes?)"
        elif missing:
            detail = f"{len(missing)} model key(s) missing from the checkpoint, e.g. '{missing[0]}'"
        else:
            detail = f"{len(unexpected)} unexpected key(s) in the checkpoint, e.g. '{unexpected[0]}'"
        raise PPSegError(f"{path}: checkpoint does not match the model ({origin}; {detail})")
    model.load_state_dict(state, strict=False)


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Keep only the newest ``keep`` ``iter_*.pt`` files (``keep <= 0``: keep all)."""
    if keep <= 0:
        return
    numbered = [(int(m.group(1)), p) for p in folder.glob("iter_*.pt")
                if (m := re.fullmatch(r"iter_(\d+)\.pt", p.name))]  # leave other names alone
    files = [p for _, p in sorted(numbered)]
    for old in files[:-keep]:
        old.unlink(missing_ok=True)


def load_segmentor(path: str | Path, **overrides: Any) -> "Segmentor":
    """Rebuild the model a weights file was saved from, load it, and wrap it for inference.

    The file records the registry name, the model's kwargs and (for files written
    by ``ppseg train``) the segmentor's mean/std and inference mode; ``overrides``
    replace any of the latter (e.g. ``flip=True``).

    Example:
        >>> seg = ppseg.load_segmentor("output/camvid/best_model.pt")
        >>> labels = seg.predict(images)          # RGB 0..255, [N, 3, H, W]
    """
    from ..registry import create_model
    from ..segmentor import Segmentor

    ckpt = load_file(path)
    name = ckpt.get("model")
    if not name:
        raise PPSegError(f"{path}: the checkpoint does not record its model name")
    model = create_model(name, **ckpt.get("model_kwargs", {}))
    load_weights(model, ckpt, path, name)
    kwargs = {**dict(ckpt.get("meta", {}).get("segmentor", {})), **overrides}
    return Segmentor(model, **kwargs).eval()
