"""The ppseg weights-file format: atomic writes, model-only weights files, clear mismatch errors.

Used by training, conversion, evaluation, export, the apps and the benchmarks; it
imports no model and no task.

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
from typing import Any

import torch
from torch import nn

from .errors import PPSegError
from .fileio import atomic_open

FORMAT = "ppseg"


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temp file next to ``path``, fsync, then rename over it."""
    with atomic_open(path) as f:
        torch.save(obj, f)


def weights_file(model_name: str, model_kwargs: dict, state_dict: dict, **meta: Any) -> dict:
    return {"format": FORMAT, "model": model_name, "model_kwargs": dict(model_kwargs),
            "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}, "meta": meta}


def weights_path(path: str | Path) -> Path:
    """The file :func:`load_file` reads for ``path``: ``zoo:NAME`` -> the shipped model's file (:mod:`ppseg.zoo`),
    a run folder -> its ``best_model.pt`` (else ``last_model.pt``, else ``checkpoints/latest.pt``), a file as is."""
    from .zoo import is_zoo_spec, resolve

    if is_zoo_spec(path):
        return resolve(str(path))
    path = Path(path)
    if path.is_dir():
        for name in ("best_model.pt", "last_model.pt", "checkpoints/latest.pt"):
            if (path / name).is_file():
                return path / name
        raise PPSegError(f"{path}: a directory without best_model.pt, last_model.pt or checkpoints/latest.pt")
    return path


def load_file(path: str | Path) -> dict:
    """Read a ppseg weights file or training checkpoint (safe: ``weights_only``); ``zoo:NAME`` reads
    the shipped model of that name, a run folder its best model (:func:`weights_path`)."""
    path = weights_path(path)
    if not path.is_file():
        raise PPSegError(f"{path}: checkpoint file not found")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise PPSegError(f"{path}: cannot read it ({e.strerror or e})") from None
    if not head.startswith(b"PK") and not head.startswith(b"\x80"):  # torch.save: a zip, or a legacy pickle
        what = "the file is empty" if not head else f"it starts with {head!r}, not a zip archive or a pickle"
        raise PPSegError(f"{path}: not a ppseg weights file or checkpoint ({what}; expected a file written "
                         "by 'ppseg train' or 'ppseg convert')")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling problem is the file's fault
        raise PPSegError(f"{path}: {_load_failure(e)}") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or "state_dict" not in obj:
        raise PPSegError(f"{path}: not a ppseg checkpoint (expected a file written by 'ppseg train' or 'ppseg convert')")
    for key, kind in (("model_kwargs", dict), ("meta", dict), ("state_dict", dict)):
        if key in obj and not isinstance(obj[key], kind):
            raise PPSegError(f"{path}: '{key}' must be a {kind.__name__}, got {type(obj[key]).__name__}")
    return obj


def _load_failure(e: BaseException) -> str:
    """One plain line for a refused or unreadable file (no PyTorch advice, no terminal escapes)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if refused:
        return (f"refused: it holds a Python object ({refused.group(1)}), and ppseg weights files hold "
                "tensors only (a pickle that names code is never run)")
    for needle, meaning in _TORCH_LOAD_ERRORS:
        if needle in text:
            return f"not a readable ppseg checkpoint ({meaning})"
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return f"not a readable ppseg checkpoint ({(lines[0] if lines else type(e).__name__)[:200]})"


#: what torch.load's archive errors mean for the user (its own text is about miniz internals)
_TORCH_LOAD_ERRORS = (
    ("failed finding central directory", "the file is truncated or damaged: an incomplete zip archive"),
    ("not in a subdirectory", "a zip archive, but not one written by torch.save"),
    ("Ran out of input", "the file is truncated"),
)


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
