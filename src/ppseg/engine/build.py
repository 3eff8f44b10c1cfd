"""Turn a loaded :class:`~ppseg.config.Config` into objects, validating everything first.

Top-level sections (PaddleSeg names where PaddleSeg users know them)::

    task: semantic           # the engine.task.TASKS entry (default semantic)
    batch_size: 8            # per process
    iters: 20000
    seed: 0
    model:         {type: <registered model name>, <factory kwargs>}
    segmentor:     {<Segmentor kwargs: mean, std, mode, crop_size, stride, scales, flip, fusion>}
    train_dataset: {type: FileListDataset | FolderDataset | Cityscapes | ADE20K, <kwargs>, transforms: [...]}
    val_dataset:   {same}
    optimizer:     {type: SGD | AdamW | Adam, <kwargs>, param_groups: [...]}
    lr_scheduler:  {type: PolynomialDecay | CosineAnnealingDecay | ConstantLR, <kwargs>}
    loss:          {types: [{type: CrossEntropyLoss, ...}, ...], coef: [1.0, ...]}
    train:         {<TrainOptions kwargs>}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from ..config import _NO, MAX_CLASSES, Config, build_kwargs, build_typed, check_keys, coerce, not_finite_note
from ..data.datasets import DATASETS, SegDataset
from ..data.palette import default_palette
from ..data.transforms import build_transforms
from ..errors import ConfigError, DataError
from ..losses import LOSSES
from ..registry import MODELS, check_model_kwargs, create_model
from .optim import OPTIMIZERS
from .options import TrainOptions
from .schedule import SCHEDULES, LRScheduler

TOP_LEVEL = ("task", "batch_size", "iters", "seed", "model", "segmentor", "train_dataset", "val_dataset",
             "optimizer", "lr_scheduler", "loss", "train", "interactive")


def check_top_level(cfg: Config) -> None:
    check_keys(cfg, TOP_LEVEL, cfg, "")
    for key in ("batch_size", "iters"):
        if key in cfg and (not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < 1):
            raise ConfigError(f"{cfg.where(key)}: expected a positive integer, got {cfg[key]!r}")
    if "task" in cfg:
        from .task import get_task

        get_task(cfg["task"], cfg.where("task"))
    if "seed" in cfg and (not isinstance(cfg["seed"], int) or isinstance(cfg["seed"], bool)
                          or not 0 <= cfg["seed"] < 2**32):
        raise ConfigError(f"{cfg.where('seed')}: expected an integer in [0, {2**32 - 1}], got {cfg['seed']!r}")


def section(cfg: Config, key: str, required: bool = True) -> Mapping[str, Any] | None:
    value = cfg.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{cfg.path}: missing section '{key}'")
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{cfg.where(key)}: expected a section (mapping), got {value!r}")
    return value


def build_dataset(cfg: Config, key: str, mode: str) -> SegDataset:
    spec = section(cfg, key)
    assert spec is not None
    if "mode" in spec:
        raise ConfigError(f"{cfg.where(key + '.mode')}: set by the section ({key} is always mode '{mode}'); remove it")
    try:
        return build_typed(spec, DATASETS, cfg, key, extra={"mode": mode},
                           builders={"transforms": lambda v, k: build_transforms(v, cfg, k).transforms})
    except DataError as e:  # a file the section names is missing or broken: say which section
        raise DataError(f"{cfg.where(key)}: {e}") from None


@dataclass
class DatasetMeta:
    """What inference needs from a dataset section, read without touching its files."""

    num_classes: int
    class_names: list[str]
    palette: np.ndarray


def dataset_meta(cfg: Config, key: str) -> DatasetMeta:
    """num_classes, class names and palette of a dataset section (validated like the real build)."""
    spec = section(cfg, key)
    assert spec is not None
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in DATASETS:
        build_typed(spec, DATASETS, cfg, key)  # raises the did-you-mean error
    cls = DATASETS[kind]
    body = {k: v for k, v in spec.items() if k not in ("type", "transforms")}
    kwargs = cls.with_defaults(build_kwargs(body, cls, cfg, key, exclude=("mode",), required=False))
    n = kwargs.get("num_classes")
    if n is None:
        raise ConfigError(f"{cfg.where(key)}: missing 'num_classes'")
    if not isinstance(n, int) or not 1 <= n <= MAX_CLASSES:
        raise ConfigError(f"{cfg.where(key + '.num_classes')}: expected an integer in [1, {MAX_CLASSES}], got {n!r}")
    names = list(kwargs.get("class_names") or [f"class_{i}" for i in range(n)])
    palette = np.asarray(kwargs.get("palette") if kwargs.get("palette") is not None else default_palette(n), np.uint8)
    if len(names) != n or palette.shape != (n, 3):
        raise ConfigError(f"{cfg.where(key)}: class_names / palette need {n} entries (num_classes)")
    return DatasetMeta(n, names, palette)


def model_spec(cfg: Config, num_classes: int | None = None) -> tuple[str, dict[str, Any]]:
    """The registered model name and validated kwargs; ``num_classes`` filled from the dataset."""
    spec = dict(section(cfg, "model") or {})
    if "type" not in spec:
        raise ConfigError(f"{cfg.where('model')}: missing 'type' (a registered model, e.g. {next(iter(MODELS))})")
    name = spec.pop("type")
    if not isinstance(name, str) or name not in MODELS:
        build_typed({"type": name}, MODELS, cfg, "model")  # raises the did-you-mean error
    kwargs = build_kwargs(spec, MODELS[name], cfg, "model")
    if num_classes is not None:
        given = kwargs.get("num_classes")
        if given is not None and given != num_classes:
            raise ConfigError(f"{cfg.where('model.num_classes')}: {given}, but the dataset has num_classes {num_classes}")
        kwargs["num_classes"] = num_classes
    try:
        kwargs = check_model_kwargs(name, kwargs)  # counts in range, numbers finite: before any work
    except ConfigError as e:
        raise ConfigError(f"{cfg.where('model')}: {e}") from None
    return name, kwargs


def build_model(cfg: Config, num_classes: int | None = None) -> tuple[str, dict[str, Any], nn.Module]:
    name, kwargs = model_spec(cfg, num_classes)
    try:
        return name, kwargs, create_model(name, **kwargs)
    except ConfigError as e:
        raise ConfigError(f"{cfg.where('model')}: {e}") from None
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{cfg.where('model')}: {name}: {e}") from None


def build_losses(cfg: Config) -> tuple[list[nn.Module], list[float]]:
    spec = section(cfg, "loss")
    assert spec is not None
    check_keys(spec, ("types", "coef"), cfg, "loss")
    types = spec.get("types")
    if not isinstance(types, list) or not types:
        raise ConfigError(f"{cfg.where('loss.types')}: expected a non-empty list of losses, e.g. [{{type: CrossEntropyLoss}}]")

    def build_one(value: Any, key: str) -> nn.Module:
        return build_typed(value, LOSSES, cfg, key, builders={
            "losses": lambda v, k: [build_one(x, f"{k}[{i}]") for i, x in enumerate(v or [])]})

    losses = [build_one(t, f"loss.types[{i}]") for i, t in enumerate(types)]
    coef = coerce(spec.get("coef", [1.0] * len(losses)), list[float])
    if coef is _NO:
        raise ConfigError(f"{cfg.where('loss.coef')}: expected a list of numbers, got {spec.get('coef')!r}"
                          f"{not_finite_note(spec.get('coef'))}")
    if any(c < 0 for c in coef):
        raise ConfigError(f"{cfg.where('loss.coef')}: coefficients must be >= 0, got {spec.get('coef')!r}")
    if len(losses) != 1 and len(coef) != len(losses):
        raise ConfigError(f"{cfg.where('loss.coef')}: {len(coef)} coefficients for {len(losses)} loss types")
    return losses, [float(c) for c in coef]


def build_options(cfg: Config) -> TrainOptions:
    kwargs = build_kwargs(section(cfg, "train", required=False) or {}, TrainOptions, cfg, "train")
    try:
        return TrainOptions(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{cfg.where('train')}: {e}") from None


@dataclass
class OptimSpec:
    """Validated optimizer and schedule sections, built once the model exists."""

    optimizer_type: str
    optimizer_kwargs: dict[str, Any]
    schedule: Any

    def build(self, model: nn.Module, iters: int) -> tuple[Any, LRScheduler]:
        opt = OPTIMIZERS[self.optimizer_type](model, **self.optimizer_kwargs)
        return opt, LRScheduler(opt, self.schedule, iters)


def optim_spec(cfg: Config) -> OptimSpec:
    spec = dict(section(cfg, "optimizer") or {})
    if not isinstance(spec.get("type"), str) or spec["type"] not in OPTIMIZERS:
        build_typed({"type": spec.get("type")}, OPTIMIZERS, cfg, "optimizer")  # did-you-mean error
    name = spec.pop("type")
    kwargs = build_kwargs(spec, OPTIMIZERS[name], cfg, "optimizer", exclude=("model",))
    try:  # validate param_groups and values now, before any work starts
        OPTIMIZERS[name](nn.Linear(1, 1), **kwargs)
    except ConfigError as e:
        raise ConfigError(f"{cfg.where('optimizer')}: {e}") from None
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{cfg.where('optimizer')}: {name}: {e}") from None
    schedule = build_typed(section(cfg, "lr_scheduler"), SCHEDULES, cfg, "lr_scheduler")
    return OptimSpec(name, kwargs, schedule)
