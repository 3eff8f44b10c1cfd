"""Click models in torch: the training/inference wrapper, the session backend, loading weights.

* :class:`ClickSegmentor` wraps a click network (``forward(image, coord_features) -> dict``):
  it takes RGB in [0, 1], normalises it as the network expects (``input_normalized``,
  ``input_mean``/``input_std``) and returns the network's dict. The trainer keeps it as the
  task's wrapper (the network is ``.model``).
* :class:`TorchClickBackend` runs it for :class:`~ppseg.interactive.session.ClickSession`.
* :func:`load_torch_predictor` builds a :class:`~ppseg.interactive.session.ClickPredictor` from a
  ppseg weights file of a click model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import PPSegError
from .session import ClickPredictor, InteractiveSettings

__all__ = ["ClickSegmentor", "TorchClickBackend", "is_click_model", "load_torch_predictor", "model_outputs"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def is_click_model(model: nn.Module) -> bool:
    """Whether ``model`` is a click model (it declares what its click features' channel 0 is)."""
    return getattr(model, "prev_input", None) in ("mask", "edge")


class ClickSegmentor(nn.Module):
    """A click network with its input normalisation.

    Args:
        model: the network (see :func:`is_click_model`).
        mean, std: normalisation of RGB in [0, 1] (default: the network's ``input_mean``/``input_std``).
    """

    def __init__(self, model: nn.Module, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        if not is_click_model(model):
            raise PPSegError(f"{type(model).__name__} is not a click model (it has no prev_input 'mask' or 'edge')")
        self.model = model
        mean = tuple(mean if mean is not None else getattr(model, "input_mean", IMAGENET_MEAN))
        std = tuple(std if std is not None else getattr(model, "input_std", IMAGENET_STD))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.normalizes = bool(getattr(model, "input_normalized", True))

    @property
    def prev_input(self) -> str:
        return self.model.prev_input

    @property
    def radius(self) -> float:
        return float(getattr(self.model, "click_radius", 5))

    def forward(self, image: Tensor, coord_features: Tensor) -> dict[str, Any]:
        """``image`` RGB in [0, 1] ``[N, 3, H, W]``, ``coord_features`` ``[N, 3, H, W]``."""
        x = (image - self.mean) / self.std if self.normalizes else image
        return self.model(x, coord_features)


def model_outputs(out: dict[str, Any]) -> list[Tensor]:
    """The network's outputs as the losses take them: instances, auxiliary heads, edge."""
    outs = [out["instances"]]
    aux = out.get("instances_aux")
    if aux is not None:
        outs.extend(aux if isinstance(aux, (list, tuple)) else [aux])
    if out.get("instances_edge") is not None:
        outs.append(out["instances_edge"])
    return outs


class TorchClickBackend:
    """:class:`~ppseg.interactive.session.ClickBackend` running a :class:`ClickSegmentor` in torch."""

    def __init__(self, wrapper: ClickSegmentor, device: torch.device | str = "cpu") -> None:
        self.wrapper = wrapper.eval()
        self.device = torch.device(device)
        self.prev_input = wrapper.prev_input
        self.radius = wrapper.radius

    @torch.no_grad()
    def infer(self, image: np.ndarray, coord: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        img = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None].to(self.device)
        crd = torch.from_numpy(np.ascontiguousarray(coord, np.float32))[None].to(self.device)
        out = self.wrapper(img, crd)
        logits = out["instances"][0, 0].float().cpu().numpy()
        edge = out.get("instances_edge")
        return logits, (None if edge is None else edge[0, 0].float().cpu().numpy())


def settings_of(meta: dict[str, Any] | None, where: str) -> InteractiveSettings:
    return InteractiveSettings.from_dict((meta or {}).get("interactive", {}).get("settings"), where)


def load_torch_predictor(path: str | Path, *, device: torch.device | str = "cpu",
                         name: str | None = None, ckpt: dict | None = None) -> ClickPredictor:
    """A :class:`ClickPredictor` from a ppseg weights file (or run folder) of a click model
    (``ckpt``: its contents when the caller has read them already).

    A weights file of another kind of model (a semantic segmentor) is refused with a line
    naming the file and what it holds."""
    from ..registry import MODELS, create_model
    from ..weights import load_file, load_weights

    ckpt = load_file(path) if ckpt is None else ckpt
    model_name = ckpt.get("model")
    meta = ckpt.get("meta") or {}
    if model_name not in MODELS:
        raise PPSegError(f"{path}: holds model {model_name!r}, which this ppseg does not know")
    task = meta.get("task")
    model = create_model(model_name, **dict(ckpt.get("model_kwargs") or {}))
    if not is_click_model(model) or (task not in (None, "interactive")):
        raise PPSegError(f"{path}: holds '{model_name}', a {task or 'semantic'} segmentation model, not a click model "
                         "(train one with a `task: interactive` config, or use zoo:click_mnv3_lite)")
    load_weights(model, ckpt, path, model_name)
    im = meta.get("interactive") or {}
    wrapper = ClickSegmentor(model.float(), im.get("mean"), im.get("std"))
    return ClickPredictor(TorchClickBackend(wrapper.to(device), device), settings_of(meta, str(path)),
                          name or str(path))
