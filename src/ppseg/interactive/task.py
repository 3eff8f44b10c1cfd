"""Interactive (click) segmentation as a :class:`~ppseg.engine.task.Task`: training by click simulation.

The RITM recipe (Sofiiuk et al. 2021) through the shared trainer:

1. **First clicks**, drawn per object: 1-3 positive clicks inside it (the first one, half the
   time, at the object's deepest point as the NoC clicker does; otherwise in its inner part) and
   0-3 negative ones, mostly in a band around it, sometimes anywhere outside.
2. **Iterations**: 0..``max_iters`` times, the model (eval mode, no gradient) predicts with the
   clicks so far and its previous output fed back; a new click goes into the larger error region
   (false negatives -> positive, false positives -> negative) at a random pixel of its inner half
   (distance to the region's border at least half the maximum).
3. **The training forward** with all clicks and the last output fed back (the previous mask's
   probabilities; EdgeFlow: the previous edge map), and the config's losses on the model's outputs
   (instances, auxiliary heads, edge) as PaddleSeg's multi-output rule pairs them: the normalized
   focal loss, and the boundary loss for an edge output.

The best model is the one with the lowest NoC@90 on the val objects (:mod:`ppseg.interactive.noc`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
from torch import nn

from ..data.sample import Sample
from ..engine.task import Scores, StepResult, Task
from ..errors import ConfigError, DataError
from ..losses import compute_losses
from .clicker import error_distances, padded_distance
from .clicks import Click, click_maps
from .predictor import ClickSegmentor, TorchClickBackend, model_outputs
from .session import ClickPredictor, InteractiveSettings

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config

__all__ = ["InteractiveTask", "ClickSimulation", "first_clicks", "error_click"]


def _pick(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int] | None:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    i = int(rng.integers(len(ys)))
    return int(ys[i]), int(xs[i])


def first_clicks(gt: np.ndarray, valid: np.ndarray, rng: np.random.Generator, max_pos: int = 3,
                 max_neg: int = 3) -> list[Click]:
    """The first clicks of a simulated session on object ``gt`` (see the module docstring)."""
    clicks: list[Click] = []
    dt = padded_distance(gt)
    top = float(dt.max())
    if top <= 0:
        return clicks
    if rng.random() < 0.5:
        y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)
        clicks.append(Click(int(y), int(x), True))
    else:
        p = _pick(dt >= 0.5 * top, rng)
        if p:
            clicks.append(Click(p[0], p[1], True))
    n_pos = int(rng.choice(max_pos, p=_geometric(max_pos)))
    inner = dt >= max(1.0, 0.15 * top)
    for _ in range(n_pos):
        p = _pick(inner, rng)
        if p:
            clicks.append(Click(p[0], p[1], True))
    n_neg = int(rng.choice(max_neg + 1, p=_geometric(max_neg + 1)))
    if n_neg:
        outside = ~gt & valid
        size = max(int(np.sqrt(gt.sum()) * 0.25), 5)
        band = cv2.dilate(gt.astype(np.uint8), np.ones((2 * size + 1, 2 * size + 1), np.uint8)).astype(bool) & outside
        for _ in range(n_neg):
            p = _pick(band if rng.random() < 0.7 and band.any() else outside, rng)
            if p:
                clicks.append(Click(p[0], p[1], False))
    return clicks


def _geometric(n: int) -> np.ndarray:
    p = 0.5 ** np.arange(n)
    return p / p.sum()


def error_click(gt: np.ndarray, valid: np.ndarray, pred: np.ndarray, rng: np.random.Generator) -> Click | None:
    """A click in the larger error region of ``pred``, at a random pixel of its inner half."""
    dfn, dfp = error_distances(gt, pred, ignore=~valid)
    mfn, mfp = float(dfn.max()), float(dfp.max())
    if max(mfn, mfp) <= 0:
        return None
    positive = mfn > mfp
    dt = dfn if positive else dfp
    p = _pick(dt > max(mfn, mfp) / 2.0, rng)
    return None if p is None else Click(p[0], p[1], positive)


class ClickSimulation:
    """Settings of the click simulation (config section ``interactive.simulation``)."""

    def __init__(self, max_iters: int = 3, max_positive: int = 3, max_negative: int = 3,
                 iter_prob: float = 0.8) -> None:
        for name, v, hi in (("max_iters", max_iters, 20), ("max_positive", max_positive, 24),
                            ("max_negative", max_negative, 24)):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
                raise ConfigError(f"interactive.simulation.{name}: expected an integer in [0, {hi}], got {v!r}")
        if isinstance(iter_prob, bool) or not isinstance(iter_prob, (int, float)) or not 0 <= iter_prob <= 1:
            raise ConfigError(f"interactive.simulation.iter_prob: expected a number in [0, 1], got {iter_prob!r}")
        self.max_iters, self.max_positive, self.max_negative = max_iters, max(max_positive, 1), max_negative
        self.iter_prob = float(iter_prob)


def collate(samples: Sequence[Sample]) -> dict[str, Any]:
    """Images ``[B, 3, H, W]`` float 0..255 and object masks ``[B, H, W]`` int64 (1, 0, ignore)."""
    shapes = {s.image.shape for s in samples}
    if len(shapes) > 1:
        raise DataError(f"cannot batch images of different sizes {sorted(shapes)}: set the dataset's crop_size")
    return {"img": torch.from_numpy(np.stack([s.image for s in samples])),
            "mask": torch.from_numpy(np.stack([s.get("mask") for s in samples]).astype(np.int64)),
            "seed": [s.meta.get("seed") for s in samples], "img_path": [s.meta.get("img_path") for s in samples]}


def list_click_models() -> list[str]:
    from ..registry import list_models

    return list_models(task="interactive")


class InteractiveTask(Task):
    """Click segmentation: simulated clicks in training, NoC@90 picks the best model."""

    name = "interactive"
    best_score = "noc90"
    higher_is_better = False
    score_keys = ("noc85", "noc90", "nof90", "miou@1", "miou@5")

    def __init__(self, losses: list[nn.Module], coef: list[float], simulation: ClickSimulation,
                 settings: InteractiveSettings, ignore_index: int = 255, max_clicks: int = 20) -> None:
        self.losses, self.coef = losses, coef
        self.sim = simulation
        self.settings = settings
        self.ignore_index = ignore_index
        self.max_clicks = max_clicks

    # ------------------------------------------------------------------ construction
    @classmethod
    def build_dataset(cls, cfg: Config, key: str, mode: str) -> Any:
        from ..config import build_typed
        from ..data.transforms import build_transforms
        from ..engine.build import section
        from .data import ClickObjects

        spec = section(cfg, key)
        try:
            return build_typed(spec, {"ClickObjects": ClickObjects}, cfg, key, extra={"mode": mode},
                               builders={"transforms": lambda v, k: build_transforms(v, cfg, k).transforms})
        except DataError as e:
            raise DataError(f"{cfg.where(key)}: {e}") from None

    @classmethod
    def from_config(cls, cfg: Config, train_set: Any, val_set: Any | None) -> InteractiveTask:
        from ..engine import build

        losses, coef = build.build_losses(cfg)
        section = cfg.get("interactive") or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{cfg.where('interactive')}: expected a section, got {section!r}")
        unknown = set(section) - {"simulation", "settings", "max_clicks"}
        if unknown:
            raise ConfigError(f"{cfg.where('interactive')}: unknown key(s) {sorted(unknown)}; "
                              "known: simulation, settings, max_clicks")
        sim = section.get("simulation") or {}
        if not isinstance(sim, dict):
            raise ConfigError(f"{cfg.where('interactive.simulation')}: expected a section, got {sim!r}")
        try:
            simulation = ClickSimulation(**sim)
        except TypeError as e:
            raise ConfigError(f"{cfg.where('interactive.simulation')}: {e}") from None
        except ConfigError as e:
            raise ConfigError(f"{cfg.path}: {e}") from None
        model = (cfg.get("model") or {}).get("type") if isinstance(cfg.get("model"), dict) else None
        if isinstance(model, str):
            from ..registry import MODELS, model_task

            if model in MODELS and model_task(model) != "interactive":
                raise ConfigError(f"{cfg.where('model.type')}: '{model}' is not a click model (task: interactive "
                                  f"trains one of: {', '.join(list_click_models())})")
        settings = InteractiveSettings.from_dict(section.get("settings"), cfg.where("interactive.settings"))
        max_clicks = section.get("max_clicks", 20)
        if isinstance(max_clicks, bool) or not isinstance(max_clicks, int) or not 1 <= max_clicks <= 100:
            raise ConfigError(f"{cfg.where('interactive.max_clicks')}: expected an integer in [1, 100], got {max_clicks!r}")
        return cls(losses, coef, simulation, settings, max_clicks=max_clicks)

    def model_overrides(self) -> dict[str, Any]:
        return {}

    def wrap(self, model: nn.Module) -> ClickSegmentor:
        return ClickSegmentor(model)

    def load(self, path: str, **overrides: Any) -> ClickSegmentor:
        from .predictor import load_torch_predictor

        return load_torch_predictor(path).backend.wrapper

    def collate(self, samples: Sequence[Sample]) -> dict[str, Any]:
        return collate(samples)

    def to(self, device: torch.device) -> InteractiveTask:
        self.losses = [loss.to(device) for loss in self.losses]
        return self

    # ------------------------------------------------------------------ training
    def _coord(self, clicks: list[list[Click]], feedback: np.ndarray, radius: float) -> torch.Tensor:
        b, h, w = feedback.shape
        maps = np.stack([click_maps(c, h, w, radius) for c in clicks])
        return torch.from_numpy(np.concatenate([feedback[:, None], maps], axis=1))

    def train_step(self, net: nn.Module, wrapper: nn.Module, batch: dict[str, Any], *,
                   device: torch.device, channels_last: bool, autocast: Any,
                   rng: torch.Generator) -> StepResult:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=rng))
        nrng = np.random.default_rng(seed)
        images = batch["img"].to(device, non_blocking=True) / 255.0
        labels = batch["mask"]
        gt = (labels == 1).numpy()
        valid = (labels != self.ignore_index).numpy()
        b, _, h, w = images.shape
        clicks = [first_clicks(gt[i], valid[i], nrng, self.sim.max_positive, self.sim.max_negative) for i in range(b)]
        feedback = np.zeros((b, h, w), np.float32)
        radius = wrapper.radius
        n_iters = int(nrng.integers(0, self.sim.max_iters + 1)) if nrng.random() < self.sim.iter_prob else 0
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if n_iters:
            was_training = wrapper.training
            wrapper.eval()
            with torch.no_grad(), autocast:
                for _ in range(n_iters):
                    out = wrapper(images, self._coord(clicks, feedback, radius).to(device))
                    prob = torch.sigmoid(out["instances"][:, 0].float()).cpu().numpy()
                    key = "instances_edge" if wrapper.prev_input == "edge" else "instances"
                    feedback = prob if key == "instances" else torch.sigmoid(out[key][:, 0].float()).cpu().numpy()
                    for i in range(b):
                        c = error_click(gt[i], valid[i], prob[i] > 0.49, nrng)
                        if c is not None:
                            clicks[i].append(c)
            wrapper.train(was_training)
        coord = self._coord(clicks, feedback, radius).to(device)
        with autocast:
            out = net(images, coord)
        outputs = [o.float() for o in model_outputs(out)]
        loss, terms = compute_losses(outputs, labels.to(device), self.losses, self.coef)
        terms["clicks"] = float(np.mean([len(c) for c in clicks]))
        return StepResult(loss, terms)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, wrapper: nn.Module, dataset: Any, *, device: torch.device | str = "cpu",
                 num_workers: int = 0, amp: str = "off", rank: int = 0, world_size: int = 1,
                 progress: bool = False) -> Scores:
        from .noc import evaluate_noc

        was_training = wrapper.training
        predictor = ClickPredictor(TorchClickBackend(wrapper, device), self.settings)
        try:
            result = evaluate_noc(dataset.iter_objects(), predictor, max_clicks=self.max_clicks, threshold=0.49,
                                  progress=progress, dataset_info="val_dataset")
        finally:
            wrapper.train(was_training)
        d = result.to_dict(per_object=False)
        values = {"noc85": result.noc85, "noc90": result.noc90, "nof90": float(result.nof90),
                  "miou@1": result.miou_at(1), "miou@5": result.miou_at(min(5, self.max_clicks))}
        summary = ("NoC@85={noc85:.2f} NoC@90={noc90:.2f} NoF@90={nof90:.0f} mIoU@1={m1:.4f} mIoU@5={m5:.4f}"
                   .format(m1=values["miou@1"], m5=values["miou@5"], **values))
        return Scores(values=values, report=result.table(), summary=summary,
                      details=d)

    def weights_meta(self) -> dict[str, Any]:
        return {"interactive": {"settings": self.settings.to_dict()}}
