"""Iteration-based training: the loop behind ``ppseg train``, one copy for every task.

One :class:`Trainer` per process. What differs between tasks (batches, the step, evaluation,
the best-model score, weights metadata) comes from the config's :class:`~ppseg.engine.task.Task`.
It validates the whole config and the
datasets before creating the run directory, then trains for ``iters``
iterations with periodic logging, evaluation (best-model tracking, EMA
evaluated separately), atomic checkpoints and exact resume.

Run directory layout::

    output/<name>/
      config.yaml            resolved config (after _base_ and --opts)
      train.log              the log lines
      history.json           loss / lr / metric history
      curves.png             loss, lr and mIoU curves (refreshed at each evaluation)
      checkpoints/latest.pt  resumable state (+ iter_<k>.pt, newest N kept)
      best_model.pt          weights with the best val score (the task's: mIoU for semantic)
      best_ema_model.pt      same for the EMA weights (train.ema)
      last_model.pt          weights at the end of training
      tensorboard/           scalars (when tensorboard is installed)
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..config import Config, dump_config
from ..errors import ConfigError, PPSegError
from . import build, dist
from ..device import resolve_device
from ..fileio import check_output_path, remove_stale_temp_files
from ..weights import atomic_save, load_file, load_weights, weights_file
from .checkpoint import prune_checkpoints, rng_state, set_rng_state
from .ema import ModelEMA
from .loader import TrainBatchSampler, make_train_loader, user_errors
from .options import autocast_for
from .plots import plot_curves
from .task import Task, get_task, step_generator

log = logging.getLogger("ppseg.train")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Train the model a config describes.

    Args:
        cfg: loaded config.
        resume: continue from ``<save_dir>/checkpoints/latest.pt`` (or from the
            checkpoint file given) with the exact optimizer, scheduler, EMA, RNG
            and data-order state.
        save_dir: overrides ``train.save_dir``.
    """

    def __init__(self, cfg: Config, resume: bool | str = False, save_dir: str | None = None) -> None:
        # ---- validate everything before any work or any file is written
        build.check_top_level(cfg)
        for key in ("batch_size", "iters"):
            if key not in cfg:
                raise ConfigError(f"{cfg.path}: missing '{key}'")
        self.cfg = cfg
        self.opts = build.build_options(cfg)
        self.iters: int = cfg["iters"]
        self.batch_size: int = cfg["batch_size"]
        self.seed: int = cfg.get("seed", 0)
        task_cls = get_task(cfg.get("task", "semantic"), cfg.where("task") if "task" in cfg else "task")
        self.train_set = task_cls.build_dataset(cfg, "train_dataset", "train")
        self.val_set = task_cls.build_dataset(cfg, "val_dataset", "val") if cfg.get("val_dataset") else None
        self.task: Task = task_cls.from_config(cfg, self.train_set, self.val_set)
        self.model_name, self.model_kwargs = build.model_spec(cfg, **self.task.model_overrides())
        self.optim_spec = build.optim_spec(cfg)
        chosen = save_dir if save_dir is not None else self.opts.save_dir  # "" is refused, not the default
        self.save_dir = Path(chosen) if chosen is not None else Path("output") / Path(cfg.path).stem
        check_output_path(chosen if chosen is not None else self.save_dir,
                          "--save-dir" if save_dir is not None else "train.save_dir", "dir")
        self.resume_from = self._resume_path(resume)

        # ---- processes, device, model
        self.device = resolve_device(self.opts.device, "train.device")
        self.rank, self.world = dist.init_distributed(self.device)
        if len(self.train_set) < self.batch_size * self.world:
            raise ConfigError(f"{cfg.where('batch_size')}: {self.batch_size} per process x {self.world} process(es) "
                              f"is more than the training set's {len(self.train_set)} samples; lower batch_size")
        if self.opts.threads:
            torch.set_num_threads(self.opts.threads)
        autocast_for(self.device, self.opts.amp)  # validates amp for the device
        seed_everything(self.seed)
        _, _, model = build.build_model(cfg, **self.task.model_overrides())
        if self.opts.init_weights and self.resume_from is None:
            from ..convert.api import load_pretrained

            try:
                load_pretrained(model, self.opts.init_weights, model_name=self.model_name)
            except PPSegError as e:
                raise PPSegError(f"{cfg.where('train.init_weights')}: {e}") from None
        self.wrapper: nn.Module = self.task.wrap(model)  # the task's inference wrapper (a Segmentor, ...)
        if self.opts.sync_bn and self.world > 1:
            self.wrapper = dist.convert_sync_batchnorm(self.wrapper, self.device)
        self.wrapper.to(self.device)
        if self.opts.channels_last:
            self.wrapper.to(memory_format=torch.channels_last)
        self.optimizer, self.scheduler = self.optim_spec.build(self.wrapper.model, self.iters)
        self.task.to(self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.opts.amp == "fp16")
        self.ema = ModelEMA(self.wrapper, self.opts.ema_decay) if self.opts.ema else None
        self.task.prepare(self.wrapper, amp=self.opts.amp, world=self.world, device=self.device)
        self.ddp: nn.Module = self.wrapper
        if self.world > 1:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.wrapper, device_ids=[self.device.index] if self.device.type == "cuda" else None)

        self.iter = 0
        self.best: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list] = {"iter": [], "loss": [], "lr": [], "eval_iter": [],
                                         **{f"{p}{k}": [] for p in ("", "ema_") for k in self.task.score_keys}}
        if self.resume_from is not None:
            self._load_state(self.resume_from)
        self.writer = None

    # ------------------------------------------------------------------ helpers

    def _resume_path(self, resume: bool | str) -> Path | None:
        if not resume:
            return None
        path = Path(resume) if isinstance(resume, str) else self.save_dir / "checkpoints" / "latest.pt"
        if not path.is_file():
            raise PPSegError(f"--resume: no checkpoint at {path} (nothing to resume; start without --resume)")
        return path

    def _load_state(self, path: Path) -> None:
        ckpt = load_file(path)
        if "optimizer" not in ckpt:
            raise PPSegError(f"{path}: a weights file, not a training checkpoint; resume needs checkpoints/latest.pt")
        load_weights(self.wrapper.model, ckpt, path, self.model_name)
        saved = [len(g.get("params", [])) for g in ckpt["optimizer"].get("param_groups", [])] \
            if isinstance(ckpt.get("optimizer"), dict) else None
        now = [len(g["params"]) for g in self.optimizer.state_dict()["param_groups"]]
        if saved != now:
            raise PPSegError(f"{path}: the checkpoint's optimizer has parameter groups of sizes {saved}, the config "
                             f"now makes {now} (optimizer.param_groups or the model changed); resume needs the "
                             "same optimizer settings, or start a new run")
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            self.scaler.load_state_dict(ckpt["scaler"])
        except (KeyError, ValueError, TypeError) as e:
            raise PPSegError(f"{path}: the optimizer / schedule state does not fit this config ({e}); "
                             "resume needs the same optimizer and lr_scheduler settings") from None
        if self.ema is not None:
            if ckpt.get("ema") is None:
                raise PPSegError(f"{path}: train.ema is on but the checkpoint has no EMA state")
            self.ema.module.model.load_state_dict(ckpt["ema"])
        self.iter = int(ckpt["iter"])
        if self.iter > self.iters:
            raise PPSegError(f"{path}: the checkpoint is at iteration {self.iter}, past the config's iters "
                             f"{self.iters} ({self.cfg.where('iters')}); raise iters to continue training")
        self.best = ckpt.get("best", {})
        self.history = ckpt.get("history", self.history)
        rng = ckpt["rng"]
        set_rng_state(rng[self.rank] if isinstance(rng, list) else rng)

    def _state(self) -> dict[str, Any]:
        rng = rng_state()
        if self.world > 1:
            gathered: list[Any] = [None] * self.world
            torch.distributed.all_gather_object(gathered, rng)
            rng = gathered
        state = weights_file(self.model_name, self.model_kwargs, self.wrapper.model.state_dict(),
                             ppseg_version=__version__, iter=self.iter)
        state.update({
            "iter": self.iter,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.module.model.state_dict() if self.ema else None,
            "rng": rng,
            "best": self.best,
            "history": self.history,
            "world_size": self.world,
            "config": json.loads(json.dumps(dict(self.cfg), default=str)),
        })
        return state

    def _save_weights(self, name: str, model: nn.Module, **meta: Any) -> None:
        atomic_save(weights_file(self.model_name, self.model_kwargs, model.state_dict(),
                                 ppseg_version=__version__, config=str(self.cfg.path), task=self.task.name,
                                 **self.task.weights_meta(), **meta),
                    self.save_dir / name)

    def _setup_run_dir(self) -> None:
        if not dist.is_main():
            return
        self.save_dir.mkdir(parents=True, exist_ok=True)
        for folder in (self.save_dir, self.save_dir / "checkpoints"):
            remove_stale_temp_files(folder)  # left by a run killed while writing a checkpoint
        for snapshot_tmp in (self.save_dir / "checkpoints").glob(".iter_*.pt.tmp"):
            snapshot_tmp.unlink(missing_ok=True)
        (self.save_dir / "config.yaml").write_text(dump_config(self.cfg), encoding="utf-8")
        handler = logging.FileHandler(self.save_dir / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        logging.getLogger("ppseg").addHandler(handler)
        self._log_handler = handler
        if self.opts.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.save_dir / "tensorboard"))
            except Exception:  # noqa: BLE001 - tensorboard is optional
                self.writer = None

    def _scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    # ------------------------------------------------------------------ evaluation

    def _evaluate(self) -> None:
        if self.val_set is None:
            return
        task, key = self.task, self.task.best_score
        models = [("", self.wrapper)] + ([("ema_", self.ema.module)] if self.ema else [])
        for prefix, wrapper in models:
            scores = task.evaluate(wrapper, self.val_set, device=self.device, num_workers=self.opts.num_workers,
                                   amp=self.opts.amp, rank=self.rank, world_size=self.world, progress=False)
            if not dist.is_main():
                continue
            label = "EMA " if prefix else ""
            log.info("[eval %s@ iter %d] %s", label, self.iter, scores.summary)
            if scores.report:
                log.info("per-class metrics:\n%s", scores.report)
            for k, v in scores.values.items():
                self._scalar(f"val/{prefix}{k}", float(v), self.iter)
            for k in task.score_keys:
                self.history.setdefault(f"{prefix}{k}", []).append(float(scores.values[k]))
            value = float(scores.values[key])
            best = self.best.get(prefix or "model")
            if task.better(value, None if best is None else best[key]):
                self.best[prefix or "model"] = {key: value, "iter": self.iter}
                self._save_weights(f"best_{prefix}model.pt", wrapper.model, iter=self.iter, **{key: value})
                log.info("[eval] best %smodel so far: %s=%.4f at iter %d -> %s", label, key,
                         value, self.iter, self.save_dir / f"best_{prefix}model.pt")
            if self.opts.save_confusion_matrix and "confusion_matrix" in scores.artifacts:
                scores.artifacts["confusion_matrix"](self.save_dir / f"confusion_{prefix}iter_{self.iter}.png")
        if dist.is_main():
            self.history["eval_iter"].append(self.iter)
            self._write_history()

    def _write_history(self) -> None:
        (self.save_dir / "history.json").write_text(json.dumps(self.history), encoding="utf-8")
        try:
            plot_curves(self.history, self.save_dir / "curves.png", self.task.score_keys)
        except Exception as e:  # noqa: BLE001 - a plot must never stop training
            log.warning("could not draw curves.png: %s", e)

    def _checkpoint(self) -> None:
        state = self._state()  # collective in DDP: every process takes part
        if not dist.is_main():
            return
        folder = self.save_dir / "checkpoints"
        atomic_save(state, folder / "latest.pt")
        snapshot = folder / f"iter_{self.iter}.pt"
        tmp = folder / f".iter_{self.iter}.pt.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(folder / "latest.pt", tmp)
        except OSError:
            shutil.copyfile(folder / "latest.pt", tmp)
        os.replace(tmp, snapshot)
        prune_checkpoints(folder, self.opts.keep_checkpoint_max)

    # ------------------------------------------------------------------ the loop

    def train(self) -> Path:
        """Run to ``iters``; returns the run directory."""
        self._setup_run_dir()
        try:
            return self._train()
        except PPSegError as e:
            log.error("[failed] at iteration %d: %s (the run is incomplete: no last_model.pt; "
                      "fix the input and continue with --resume)", self.iter, e)
            raise
        except KeyboardInterrupt:
            log.error("[interrupted] at iteration %d (the run is incomplete: no last_model.pt; "
                      "continue with --resume)", self.iter)
            raise
        except BaseException as e:
            log.error("[failed] at iteration %d: %s: %s (the run is incomplete: no last_model.pt; "
                      "continue with --resume once the cause is fixed)", self.iter, type(e).__name__, e)
            raise
        finally:
            if self.writer is not None:
                self.writer.close()
            if getattr(self, "_log_handler", None) is not None:
                logging.getLogger("ppseg").removeHandler(self._log_handler)
                self._log_handler.close()

    def _train(self) -> Path:
        opts = self.opts
        sampler = TrainBatchSampler(len(self.train_set), self.batch_size, self.seed, self.rank, self.world,
                                    start_iter=self.iter)
        loader = make_train_loader(self.train_set, sampler, opts.num_workers, self.task.collate,
                                   pin_memory=self.device.type == "cuda")
        if dist.is_main():
            n_params = sum(p.numel() for p in self.wrapper.model.parameters())
            log.info("ppseg %s | model %s (%s params) | %d train images | batch %d x %d process(es) | "
                     "%d iters | device %s | amp %s | run dir %s%s", __version__, self.model_name,
                     f"{n_params:,}", len(self.train_set), self.batch_size, self.world, self.iters,
                     self.device, opts.amp, self.save_dir,
                     f" | resumed at iter {self.iter}" if self.resume_from else "")
        progress = None
        show = opts.progress == "on" or (opts.progress == "auto" and sys.stderr.isatty())
        if show and dist.is_main():
            from tqdm import tqdm

            progress = tqdm(total=self.iters, initial=self.iter, dynamic_ncols=True, unit="it")
        self.ddp.train()
        data_iter = iter(user_errors(loader))
        window_loss: list[float] = []
        window_terms: dict[str, list[float]] = {}
        t_window = time.perf_counter()
        t_start, start_iter = time.perf_counter(), self.iter
        while self.iter < self.iters:
            batch = next(data_iter)
            step = self.task.train_step(self.ddp, self.wrapper, batch, device=self.device,
                                        channels_last=opts.channels_last, autocast=autocast_for(self.device, opts.amp),
                                        rng=step_generator(batch["seed"]))
            loss, terms = step.loss, step.terms
            if not torch.isfinite(loss):
                raise PPSegError(f"loss became {loss.item()} at iteration {self.iter + 1}; "
                                 "lower the learning rate or enable train.clip_grad_norm")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if opts.clip_grad_norm is not None:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.wrapper.parameters(), opts.clip_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            lr = self.scheduler.get_lr()
            self.scheduler.step()
            self.iter += 1
            if self.ema is not None:
                self.ema.update(self.wrapper, self.iter)
            window_loss.append(float(loss.detach()))
            for k, v in terms.items():
                window_terms.setdefault(k, []).append(float(v))
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{window_loss[-1]:.4f}", lr=f"{lr:.2e}")

            if self.iter % opts.log_iters == 0 or self.iter == self.iters:
                mean_loss = float(dist.all_reduce_mean(torch.tensor(np.mean(window_loss))))
                elapsed = time.perf_counter() - t_window
                ips = len(window_loss) * self.batch_size * self.world / max(elapsed, 1e-9)
                done = self.iter - start_iter
                eta = (time.perf_counter() - t_start) / max(done, 1) * (self.iters - self.iter)
                if dist.is_main():
                    term_str = " ".join(f"{k}={np.mean(v):.4f}" for k, v in window_terms.items()) if len(window_terms) > 1 else ""
                    log.info("[train] iter %d/%d loss=%.4f %slr=%.6f ips=%.2f img/s eta=%s", self.iter, self.iters,
                             mean_loss, term_str + (" " if term_str else ""), lr, ips, _fmt_eta(eta))
                    self.history["iter"].append(self.iter)
                    self.history["loss"].append(mean_loss)
                    self.history["lr"].append(lr)
                    self._scalar("train/loss", mean_loss, self.iter)
                    self._scalar("train/lr", lr, self.iter)
                    self._scalar("train/ips", ips, self.iter)
                window_loss, window_terms = [], {}
                t_window = time.perf_counter()

            evaluating = opts.eval_interval and (self.iter % opts.eval_interval == 0 or self.iter == self.iters)
            if evaluating or (self.iter == self.iters and self.val_set is not None):
                self._evaluate()
                self.ddp.train()
            if self.iter % opts.save_interval == 0 or self.iter == self.iters:
                self._checkpoint()
        if progress is not None:
            progress.close()
        if dist.is_main():
            self._save_weights("last_model.pt", self.wrapper.model, iter=self.iter)
            if self.ema is not None:
                self._save_weights("last_ema_model.pt", self.ema.module.model, iter=self.iter)
            self._write_history()
            key = self.task.best_score
            summary = ", ".join(f"best {k} {key}={v[key]:.4f} @ iter {v['iter']}" for k, v in self.best.items())
            log.info("[done] %d iters in %s%s; outputs in %s", self.iter - start_iter,
                     _fmt_eta(time.perf_counter() - t_start), f"; {summary}" if summary else "", self.save_dir)
        dist.barrier()
        return self.save_dir


def _fmt_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"
