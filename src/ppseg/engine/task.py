"""The task seam: what differs between semantic segmentation, interactive segmentation, matting...

The trainer loop, AMP, EMA, DDP, checkpointing and resume exist once (:mod:`ppseg.engine.trainer`);
a :class:`Task` supplies everything else:

* ``wrap(model)`` / ``load(path)``: the inference wrapper (normalisation, inference modes) around a
  network, or around the one a weights file holds;
* ``collate(samples)``: a batch from :class:`~ppseg.data.sample.Sample` s;
* ``train_step(net, batch, rng)``: one batch -> :class:`StepResult` (loss + logged terms). ``rng``
  is a generator derived from the batch's per-sample seeds (:func:`step_generator`), so a step
  that draws random numbers (e.g. simulated clicks) is the same after a resume;
* ``evaluate(wrapper, dataset, ...)``: :class:`Scores` (scalar scores + a report);
* ``best_score`` / ``higher_is_better``: which score picks the best model, in which direction;
* ``weights_meta()``: what a weights file records besides the network (normalisation, class names,
  the val transforms...).

The config key ``task:`` selects one from :data:`TASKS` (default ``semantic``). The engine names
tasks by import path, so it imports no task and no model.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..config import did_you_mean
from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config
    from ..data.sample import Sample

#: task name -> "module:Class" (imported on use) or the class itself; a new task adds one line
TASKS: dict[str, str | type[Task]] = {
    "semantic": "ppseg.semantic.task:SemanticTask",
    "interactive": "ppseg.interactive.task:InteractiveTask",
}
DEFAULT_TASK = "semantic"


@dataclass
class StepResult:
    """One training step: the graph-connected total loss and its logged terms (floats)."""

    loss: Tensor
    terms: dict[str, float] = field(default_factory=dict)


@dataclass
class Scores:
    """An evaluation: scalar ``values`` (logged, plotted, written to history and TensorBoard),
    a human-readable ``report``, a one-line ``summary``, JSON-able ``details`` (``ppseg val
    --json``) and ``artifacts``: named writers of extra files (e.g. a confusion matrix)."""

    values: dict[str, float]
    report: str = ""
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Callable[[Path], None]] = field(default_factory=dict)


class Task(ABC):
    """What one kind of training and evaluation needs beyond the shared loop.

    A task is built from the validated config and the datasets (:meth:`from_config`); the
    trainer then asks it for the model's kwargs, the inference wrapper, batches, steps,
    evaluations and the weights file's metadata.
    """

    #: the name under ``task:`` in a config and in weights files
    name: ClassVar[str]
    #: the :attr:`Scores.values` key that picks the best model
    best_score: ClassVar[str]
    #: whether a larger ``best_score`` is better (mIoU) or a smaller one (SAD)
    higher_is_better: ClassVar[bool] = True
    #: the scores kept in ``history.json`` (and the curves), in order
    score_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def build_dataset(cls, cfg: Config, key: str, mode: str) -> Any:
        """The dataset of config section ``key`` (``train_dataset`` / ``val_dataset``) in ``mode``;
        by default one of the segmentation datasets (:data:`ppseg.data.datasets.DATASETS`)."""
        from . import build

        return build.build_dataset(cfg, key, mode)

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: Config, train_set: Any, val_set: Any | None) -> Task:
        """Build from a validated config (losses, wrapper settings) and the datasets."""

    @abstractmethod
    def model_overrides(self) -> dict[str, Any]:
        """Model kwargs the data decides (e.g. ``num_classes``)."""

    @abstractmethod
    def wrap(self, model: nn.Module) -> nn.Module:
        """The inference wrapper around ``model`` (it also runs the training forward). It keeps the
        network as ``.model``: the optimizer, EMA and weights files work on that."""

    @abstractmethod
    def collate(self, samples: Sequence[Sample]) -> dict[str, Any]:
        """A batch (tensors on the CPU) from samples."""

    @abstractmethod
    def load(self, path: str, **overrides: Any) -> nn.Module:
        """The inference wrapper of a weights file (``ppseg val --model``); ``overrides`` are the
        command's inference flags."""

    def to(self, device: torch.device) -> Task:
        """Move loss buffers (class weights...) to ``device``."""
        return self

    def prepare(self, wrapper: nn.Module, *, amp: str, world: int, device: torch.device) -> None:
        """Called once the wrapper is on its device: choose fast paths that depend on the setup."""

    @abstractmethod
    def train_step(self, net: nn.Module, wrapper: nn.Module, batch: dict[str, Any], *,
                   device: torch.device, channels_last: bool, autocast: Any,
                   rng: torch.Generator) -> StepResult:
        """One forward + loss. ``net`` is ``wrapper`` or its DDP wrapper (call ``net`` for the
        forward so DDP synchronises); ``autocast`` is the AMP context to enter for the forward."""

    @abstractmethod
    def evaluate(self, wrapper: nn.Module, dataset: Any, *, device: torch.device | str = "cpu",
                 num_workers: int = 0, amp: str = "off", rank: int = 0, world_size: int = 1,
                 progress: bool = False) -> Scores:
        """Scores of ``wrapper`` on ``dataset`` (all processes take part; every rank gets the result)."""

    @abstractmethod
    def weights_meta(self) -> dict[str, Any]:
        """What a weights file records besides the network (normalisation, classes, transforms)."""

    def better(self, value: float, best: float | None) -> bool:
        """Whether ``value`` beats ``best`` in this task's direction."""
        if best is None:
            return True
        return value > best if self.higher_is_better else value < best


def get_task(name: Any, where: str = "task") -> type[Task]:
    """The task class registered as ``name``; a :class:`ConfigError` naming ``where`` otherwise."""
    if not isinstance(name, str) or name not in TASKS:
        raise ConfigError(f"{where}: unknown task {name!r}{did_you_mean(str(name), TASKS)}; "
                          f"known: {', '.join(TASKS)}")
    entry = TASKS[name]
    if not isinstance(entry, str):
        return entry
    module, cls = entry.split(":")
    return getattr(importlib.import_module(module), cls)


def step_generator(seeds: Sequence[int], device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator for one training step, derived from the batch's per-sample seeds.

    The seeds come from the data order (a pure function of ``(seed, iteration)``), so the
    generator is the same at iteration ``k`` in a fresh run and in a resumed one, whatever the
    number of workers. Draw from it with ``generator=rng`` (CPU tensors)."""
    state = np.random.SeedSequence([int(s) % 2**32 for s in seeds] or [0]).generate_state(2, dtype=np.uint32)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(state[0]) << 32 | int(state[1]))
    return gen
