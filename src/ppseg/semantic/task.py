"""Semantic segmentation as a :class:`~ppseg.engine.task.Task`: the first task the trainer runs.

Batches are images + ``"label"`` masks; the step is PaddleSeg's multi-output loss
(:func:`ppseg.losses.compute_losses`), evaluation is mIoU / Acc / Kappa / Dice
(:class:`~ppseg.semantic.metrics.SegMetrics`) on labels at the original image size, the best
model is the one with the highest mIoU, and a weights file records the segmentor's
normalisation and inference mode, the class names and the val transforms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from ..data.sample import Sample
from ..data.transforms import describe_transforms
from ..engine.task import Scores, StepResult, Task
from ..errors import ConfigError, DataError
from ..losses import compute_losses
from ..models.layers import output_list
from .evaluate import evaluate
from .segmentor import Segmentor, build_segmentor, load_segmentor, segmentor_kwargs

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config

def lowres_loss_applies(model: nn.Module, losses: Sequence[nn.Module], amp: str, world: int,
                        device: torch.device | str = "cpu") -> bool:
    """Whether training may hand the loss the model's low-resolution logits.

    Both sides declare it: the model by ``trains_from_lowres`` (its training output is
    ``[bilinear_resize(forward_lowres(x), x.shape)]``, e.g. PP-MobileSeg), the loss by
    ``accepts_lowres_logits(device)`` (it resizes low-resolution logits itself without
    materialising them, e.g. the recipe's fused CE + Lovasz :class:`~ppseg.losses.MixedLoss`).
    Exactly equivalent and much cheaper. Only in float32 (``amp: off``: under autocast the model
    resizes in bf16) and in a single process (DDP needs its own forward).
    """
    accepts = getattr(losses[0], "accepts_lowres_logits", None) if len(losses) >= 1 else None
    return (world == 1 and amp == "off" and bool(getattr(model, "trains_from_lowres", False))
            and callable(getattr(model, "forward_lowres", None)) and callable(accepts) and bool(accepts(device)))


def train_forward(net: nn.Module, segmentor: Segmentor, images: Tensor, labels: Tensor,
                  lowres: bool) -> list[Tensor]:
    """The training outputs handed to the losses: ``net(images)`` (``net`` is the segmentor or
    its DDP wrapper), or the low-resolution logits when ``lowres`` (see
    :func:`lowres_loss_applies`) and the labels have the image size."""
    if lowres and labels.shape[-2:] == images.shape[-2:]:
        return [segmentor.model.forward_lowres(segmentor.normalize(images))]
    return output_list(net(images))


def collate(samples: Sequence[Sample]) -> dict[str, Any]:
    """Stack images (``B x 3 x H x W`` float32) and ``"label"`` masks (``B x H x W`` int64).

    Train samples carry the label as a target; val samples keep it at the original size
    (``sample.original``), returned as a list of tensors when sizes differ. Missing labels come
    back as ``None``. ``ops`` (the geometric record), paths, indices and seeds become lists.
    """
    shapes = {s.image.shape for s in samples}
    if len(shapes) > 1:
        raise DataError(f"cannot batch images of different sizes {sorted(shapes)}: "
                        "use batch_size 1 or a fixed-size Resize/crop")
    out: dict[str, Any] = {"img": torch.from_numpy(np.stack([s.image for s in samples]))}
    labels = [s.get("label") if "label" in s.targets else
              (s.original["label"].data if "label" in s.original else None) for s in samples]
    if all(lab is not None for lab in labels) and len({lab.shape for lab in labels}) == 1:
        out["label"] = torch.from_numpy(np.stack(labels).astype(np.int64, copy=False))
    else:
        out["label"] = [None if lab is None else torch.from_numpy(np.asarray(lab)) for lab in labels]
    out["ops"] = [list(s.ops) for s in samples]
    for key in ("img_path", "label_path", "index", "seed"):
        out[key] = [s.meta.get(key) for s in samples]
    return out


class SemanticTask(Task):
    """Semantic segmentation: per-pixel classes, mIoU picks the best model."""

    name = "semantic"
    best_score = "miou"
    higher_is_better = True
    score_keys = ("miou",)

    def __init__(self, losses: list[nn.Module], loss_coef: list[float], segmentor_kwargs: dict[str, Any],
                 num_classes: int, class_names: list[str], val_transforms: Sequence[Any] | None = None,
                 cfg: Config | None = None) -> None:
        self.losses = losses
        self.loss_coef = loss_coef
        self.segmentor_kwargs = segmentor_kwargs
        self.num_classes = num_classes
        self.class_names = class_names
        self.val_transforms = list(val_transforms or [])
        self.cfg = cfg
        self.lowres = False

    @classmethod
    def from_config(cls, cfg: Config, train_set: Any, val_set: Any | None) -> SemanticTask:
        from ..engine import build

        if val_set is not None and val_set.num_classes != train_set.num_classes:
            raise ConfigError(f"{cfg.where('val_dataset.num_classes')}: {val_set.num_classes}, "
                              f"but train_dataset has {train_set.num_classes}")
        losses, coef = build.build_losses(cfg)
        for i, loss in enumerate(losses):  # class weights must fit the classes now, not at the first step
            for module in loss.modules():
                weight = getattr(module, "class_weight", None)
                if isinstance(weight, torch.Tensor) and weight.numel() != train_set.num_classes:
                    raise ConfigError(f"{cfg.where(f'loss.types[{i}]')}: {type(module).__name__} has {weight.numel()} "
                                      f"class weights, but the dataset has num_classes {train_set.num_classes}")
        key = "val_dataset" if cfg.get("val_dataset") else "train_dataset"
        return cls(losses, coef, segmentor_kwargs(cfg), train_set.num_classes, train_set.class_names,
                   (cfg.get(key) or {}).get("transforms") if key == "val_dataset" else [], cfg)

    def model_overrides(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes}

    def wrap(self, model: nn.Module) -> Segmentor:
        if self.cfg is not None:
            return build_segmentor(self.cfg, model)
        return Segmentor(model, **self.segmentor_kwargs)

    def load(self, path: str, **overrides: Any) -> Segmentor:
        """The inference wrapper of a weights file, built as the config says (``ppseg val``)."""
        return load_segmentor(path, config=self.cfg, num_classes=self.num_classes, **overrides)

    def collate(self, samples: Sequence[Sample]) -> dict[str, Any]:
        return collate(samples)

    def to(self, device: torch.device) -> SemanticTask:
        self.losses = [loss.to(device) for loss in self.losses]
        return self

    def prepare(self, wrapper: nn.Module, *, amp: str, world: int, device: torch.device) -> None:
        self.lowres = lowres_loss_applies(wrapper.model, self.losses, amp, world, device)

    def train_step(self, net: nn.Module, wrapper: nn.Module, batch: dict[str, Any], *,
                   device: torch.device, channels_last: bool, autocast: Any,
                   rng: torch.Generator) -> StepResult:
        images = batch["img"].to(device, non_blocking=True)
        labels = batch["label"].to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast:
            outputs = train_forward(net, wrapper, images, labels, self.lowres)
        loss, terms = compute_losses([o.float() for o in outputs], labels, self.losses, self.loss_coef)
        return StepResult(loss, terms)

    def evaluate(self, wrapper: nn.Module, dataset: Any, *, device: torch.device | str = "cpu",
                 num_workers: int = 0, amp: str = "off", rank: int = 0, world_size: int = 1,
                 progress: bool = False) -> Scores:
        metrics = evaluate(wrapper, dataset, device=device, num_workers=num_workers, amp=amp, rank=rank,
                           world_size=world_size, progress=progress)
        return scores_of(metrics, dataset.class_names)

    def weights_meta(self) -> dict[str, Any]:
        return {"segmentor": self.segmentor_kwargs, "class_names": self.class_names,
                "transforms": describe_transforms(self.val_transforms)}


def scores_of(metrics: Any, class_names: Sequence[str]) -> Scores:
    """:class:`~ppseg.engine.task.Scores` of accumulated :class:`~ppseg.semantic.metrics.SegMetrics`."""
    res = metrics.compute()
    values = {k: float(res[k]) for k in ("miou", "acc", "kappa", "mdice")}
    return Scores(
        values=values,
        report=metrics.table(list(class_names)),
        summary="mIoU={miou:.4f} Acc={acc:.4f} Kappa={kappa:.4f} mDice={mdice:.4f}".format(**values),
        details={k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in res.items()},
        artifacts={"confusion_matrix": lambda path: metrics.confusion_matrix_figure(path, list(class_names))},
    )
