"""Fuzz table (issue 13): hostile inputs for every command except ``humanseg`` and for the Python API.
(``annotate``'s server answers hostile requests in tests/test_annotate_api.py.)

Every CLI case must end with exit code 1, exactly one stderr line ``ppseg <cmd>: error: ...`` that
names the culprit (file, key or value), no traceback, and nothing left behind: no output path, no
hidden staging or temp file next to it, and the shared run untouched. The one documented exception is
a dataset file that breaks *during* training (found when the loader reads it): the run directory then
holds ``config.yaml`` and a ``train.log`` ending in ``[failed]``, and no weights or checkpoints.

The API cases expect the documented exception types: :class:`ConfigError` for a wrong argument,
:class:`PPSegError` for a bad file, :class:`DataError` for a bad image.
"""

from __future__ import annotations

import pickle
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image

from helpers.data import set_dotted, tiny_config, train_tiny_run, write_config
from ppseg.cli import main
from ppseg.errors import ConfigError, DataError, PPSegError

pytestmark = pytest.mark.slow

ONNX = Path(__file__).parent / "data" / "legacy" / "onnx"
DEL = object()  # remove the key from the config


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One tiny trained run (weights, a resumable checkpoint) shared by every case (read-only)."""
    root = tmp_path_factory.mktemp("fuzz")
    data, cfg, run = train_tiny_run(root)
    assert (run / "checkpoints" / "latest.pt").is_file()
    return root, data, cfg


@dataclass
class X:
    """What a case builds its hostile input from; ``out`` is where the command would write."""

    tmp: Path
    root: Path
    data: Path
    cfg_path: Path

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    @property
    def cfg(self) -> str:
        return str(self.cfg_path)

    @property
    def weights(self) -> str:
        return str(self.root / "run" / "best_model.pt")

    @property
    def img(self) -> str:
        return str(self.data / "images" / "val" / "000.png")

    def config(self, over: dict[str, Any], name: str = "c.yml", data: Path | None = None) -> str:
        cfg = set_dotted(tiny_config(data or self.data, self.out), over, delete=DEL)
        return str(write_config(self.tmp / name, cfg))

    def file(self, name: str, content: bytes | str = b"") -> str:
        p = self.tmp / "in" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
        return str(p)

    def folder(self, name: str, files: dict[str, bytes] | None = None) -> str:
        p = self.tmp / "in" / name
        p.mkdir(parents=True, exist_ok=True)
        for n, b in (files or {}).items():
            (p / n).write_bytes(b)
        return str(p)

    def data_copy(self) -> Path:
        dst = self.tmp / "data"
        if not dst.exists():
            shutil.copytree(self.data, dst)
        return dst

    def truncated(self, src: str, name: str = "trunc.pt") -> str:
        b = Path(src).read_bytes()
        return self.file(name, b[: len(b) // 2])

    def zip_junk(self, name: str = "junk.pt") -> str:
        p = self.tmp / "in" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("readme.txt", "not a checkpoint")
        return str(p)

    def evil_pickle(self, name: str) -> str:
        class Evil:
            def __reduce__(self):
                return (print, ("pwned",))

        return self.file(name, pickle.dumps({"w": Evil()}, protocol=2))


def png(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


# ============================================================================= the table
# (id, argv builder, needles[, options]); options: {"failed_run": True} for a run that broke while training

def T(case_id: str, over: dict[str, Any], *needles: str, **opts: Any):
    """A ``ppseg train`` case on a config variant (``c.yml`` with ``over`` applied)."""
    return (f"train-{case_id}", lambda x: ["train", "-c", x.config(over)], ("c.yml", *needles), opts)


def V(case_id: str, argv: Callable[[X], list[str]], *needles: str):
    return (f"val-{case_id}", lambda x: ["val", "-c", x.cfg, "--json", str(x.out / "m.json"), *argv(x)], needles, {})


def P(case_id: str, argv: Callable[[X], list[str]], *needles: str):
    return (f"predict-{case_id}", lambda x: ["predict", "-c", x.cfg, "--save-dir", str(x.out), *argv(x)], needles, {})


def E(case_id: str, argv: Callable[[X], list[str]], *needles: str):
    return (f"export-{case_id}", lambda x: ["export", "-c", x.cfg, "--out", str(x.out), *argv(x)], needles, {})


def B(case_id: str, argv: Callable[[X], list[str]], *needles: str):
    return (f"bench-{case_id}", lambda x: ["bench", "--input-shape", "1", "3", "32", "32", "--backends", "torch",
                                          "--json", str(x.out / "b.json"), *argv(x)], needles, {})


def C(case_id: str, argv: Callable[[X], list[str]], *needles: str):
    return (f"convert-{case_id}", lambda x: ["convert", "--out", str(x.out / "w.pt"), *argv(x)], needles, {})


def D(case_id: str, argv: Callable[[X], list[str]], *needles: str):
    return (f"check-data-{case_id}", lambda x: ["check-data", *argv(x)], needles, {})


def K(case_id: str, argv: Callable[[X], list[str]], *needles: str):
    """A ``ppseg click-eval`` case (the results file must never appear)."""
    return (f"click-eval-{case_id}", lambda x: ["click-eval", "--json", str(x.out / "k.json"), *argv(x)], needles, {})


def A(case_id: str, argv: Callable[[X], list[str]], *needles: str):
    """A ``ppseg annotate`` case: it must fail before serving, leaving no annotations folder behind."""
    return (f"annotate-{case_id}", lambda x: ["annotate", "--no-browser", "--port", "0", *argv(x)], needles, {})


def _photos(x: X) -> str:
    """A folder with one small photo (the input of the annotate cases that fail elsewhere)."""
    return x.folder("photos", {"a.png": png(np.full((24, 32, 3), 120, np.uint8))})


def _grabcut_folder(x: X, masks: dict[str, np.ndarray] | None = None, images: tuple[str, ...] = ("a",)) -> str:
    """A GrabCut-layout folder (``images/`` + ``masks/``): a 40 x 48 image per name, a square object mask."""
    root = x.tmp / "in" / "gc"
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for name in images:
        (root / "images" / f"{name}.png").write_bytes(png(np.full((40, 48, 3), 90, np.uint8)))
    if masks is None:
        square = np.zeros((40, 48), np.uint8)
        square[10:30, 12:36] = 255
        masks = {n: square for n in images}
    for name, m in masks.items():
        (root / "masks" / f"{name}.png").write_bytes(png(m))
    return str(root)


def _click_config(over: dict[str, Any]) -> Callable[[X], list[str]]:
    """``ppseg train`` on an interactive config (ClickObjects on the tiny dataset) with ``over`` applied."""
    def make(x: X) -> list[str]:
        src = {"dataset_root": str(x.data), "file_list": "train.txt", "split": "components", "min_area": 20}
        cfg = tiny_config(x.data, x.out)
        cfg.update({"task": "interactive", "model": {"type": "click_mobilenetv3_lite"},
                    "train_dataset": {"type": "ClickObjects", "crop_size": [64, 64], "sources": [src]},
                    "loss": {"types": [{"type": "NormalizedFocalLoss"}], "coef": [1.0, 0.4, 0.4, 0.4]}})
        cfg.pop("val_dataset")
        return ["train", "-c", str(write_config(x.tmp / "c.yml", set_dotted(cfg, over)))]
    return make


def I(case_id: str, over: dict[str, Any], *needles: str):
    return (f"train-interactive-{case_id}", _click_config(over), ("c.yml", *needles), {})


def _all_labels(value: int) -> Callable[[X], list[str]]:
    def make(x: X) -> list[str]:
        d = x.data_copy()
        for f in (d / "labels" / "train").glob("*.png"):
            f.write_bytes(png(np.full((48, 64), value, np.uint8)))
        return ["train", "-c", x.config({}, data=d)]
    return make


def _all_images(content: bytes) -> Callable[[X], list[str]]:
    def make(x: X) -> list[str]:
        d = x.data_copy()
        for f in (d / "images" / "train").glob("*.png"):
            f.write_bytes(content)
        return ["train", "-c", x.config({}, data=d)]
    return make


def _file_list(content: bytes, key: str = "train_dataset") -> Callable[[X], list[str]]:
    return lambda x: ["train", "-c", x.config({f"{key}.file_list": x.file("list.txt", content)})]


def _val_data(mutate: Callable[[Path], None]) -> Callable[[X], list[str]]:
    def make(x: X) -> list[str]:
        d = x.data_copy()
        mutate(d)
        return ["val", "-c", x.config({}, data=d), "--model", x.weights, "--json", str(x.out / "m.json")]
    return make


NAN, INF = float("nan"), float("inf")
CE = [{"type": "CrossEntropyLoss"}]

CASES: list[tuple] = [
    # ------------------------------------------------------------------ train: top level
    T("batch-size-string", {"batch_size": "two"}, "batch_size", "'two'"),
    T("batch-size-bool", {"batch_size": True}, "batch_size", "True"),
    T("batch-size-zero", {"batch_size": 0}, "batch_size", "0"),
    T("batch-size-negative", {"batch_size": -3}, "batch_size", "-3"),
    T("batch-size-float", {"batch_size": 2.5}, "batch_size", "2.5"),
    T("batch-size-larger-than-dataset", {"batch_size": 100}, "batch_size", "100", "4 samples"),
    T("iters-zero", {"iters": 0}, "iters", "0"),
    T("iters-negative", {"iters": -1}, "iters", "-1"),
    T("iters-string", {"iters": "1000"}, "iters", "'1000'"),
    T("iters-nan", {"iters": NAN}, "iters", "nan"),
    T("seed-string", {"seed": "abc"}, "seed", "'abc'"),
    T("seed-float", {"seed": 1.5}, "seed", "1.5"),
    T("unknown-top-level-key", {"learning_rate": 0.1}, "learning_rate", "unknown key"),
    T("unknown-task", {"task": "matting"}, "task", "matting"),
    T("missing-iters", {"iters": DEL}, "iters"),
    # ------------------------------------------------------------------ train: model
    T("model-is-a-string", {"model": "lraspp"}, "model", "'lraspp'"),
    T("model-is-a-list", {"model": ["lraspp_mobilenetv3_large"]}, "model", "section"),
    T("model-unknown-type", {"model.type": "lraspp_mobilenetv3_larg"}, "model.type", "did you mean"),
    T("model-type-is-a-number", {"model.type": 42}, "model.type", "42"),
    T("model-unknown-key", {"model.widht": 2}, "model.widht", "unknown key"),
    T("model-int-is-a-string", {"model.inter_channels": "wide"}, "model.inter_channels", "'wide'"),
    T("model-int-negative", {"model.inter_channels": -5}, "model", "inter_channels", "-5"),
    T("model-int-zero", {"model.inter_channels": 0}, "model", "inter_channels", "0"),
    T("model-scale-negative", {"model.scale": -1.0}, "model", "scale", "-1"),
    T("model-dropout-2", {"model.dropout": 2.0}, "model", "dropout", "2"),
    T("model-num-classes-mismatch", {"model.num_classes": 5}, "model.num_classes", "5"),
    T("model-num-classes-nan", {"model.num_classes": NAN}, "model.num_classes", "nan"),
    # ------------------------------------------------------------------ train: datasets
    T("dataset-is-a-string", {"train_dataset": "data/"}, "train_dataset", "'data/'"),
    T("dataset-is-a-list", {"train_dataset": [1, 2]}, "train_dataset", "[1, 2]"),
    T("dataset-unknown-type", {"train_dataset.type": "FileList"}, "train_dataset.type", "did you mean"),
    T("dataset-unknown-key", {"train_dataset.num_clases": 3}, "train_dataset.num_clases", "num_classes"),
    T("num-classes-zero", {"train_dataset.num_classes": 0}, "train_dataset", "num_classes", "0"),
    T("num-classes-string", {"train_dataset.num_classes": "three"}, "train_dataset.num_classes", "'three'"),
    T("num-classes-bool", {"train_dataset.num_classes": True}, "train_dataset.num_classes", "True"),
    T("num-classes-huge", {"train_dataset.num_classes": 10**9, "train_dataset.class_names": DEL},
      "train_dataset", "num_classes", "1000000000"),
    T("ignore-index-negative", {"train_dataset.ignore_index": -1}, "train_dataset", "ignore_index", "-1"),
    T("ignore-index-is-a-class", {"train_dataset.ignore_index": 1}, "train_dataset", "ignore_index", "1"),
    T("class-names-wrong-count", {"train_dataset.class_names": ["a", "b"]}, "train_dataset", "class_names"),
    T("class-names-a-string", {"train_dataset.class_names": "abc"}, "train_dataset.class_names", "'abc'"),
    T("palette-wrong-count", {"train_dataset.palette": [[0, 0, 0]]}, "train_dataset", "palette"),
    T("palette-out-of-range", {"train_dataset.palette": [[0, 0, 0], [999, 0, 0], [0, 0, 1]]},
      "train_dataset", "palette"),
    T("palette-a-string", {"train_dataset.palette": "red"}, "train_dataset", "palette"),
    T("file-list-missing", {"train_dataset.file_list": "nope.txt"}, "nope.txt", "not found"),
    ("train-file-list-is-a-directory",
     lambda x: ["train", "-c", x.config({"train_dataset.file_list": x.folder("lst")})], ("lst", "folder"), {}),
    ("train-file-list-empty", _file_list(b""), ("list.txt", "no samples"), {}),
    ("train-file-list-blank-lines", _file_list(b"\n \n\t\n"), ("list.txt", "no samples"), {}),
    ("train-file-list-binary-junk", _file_list(bytes(range(256)) * 4), ("list.txt",), {}),
    ("train-file-list-nul-bytes", _file_list(b"images/train/000.png\x00 labels/train/000.png\n"),
     ("list.txt:1",), {}),
    ("train-file-list-comma-separated", _file_list(b"images/train/000.png,labels/train/000.png\n"),
     ("list.txt:1", "000.png,labels"), {}),
    ("train-file-list-three-fields", _file_list(b"a.png b.png c.png\n"), ("list.txt:1", "3 fields"), {}),
    ("train-file-list-missing-image", _file_list(b"images/train/nope.png labels/train/000.png\n"),
     ("list.txt:1", "nope.png"), {}),
    ("train-file-list-names-a-directory", _file_list(b"images/train labels/train\n"),
     ("list.txt:1", "images/train", "folder"), {}),
    ("train-file-list-no-labels", _file_list(b"images/train/000.png\nimages/train/001.png\n"),
     ("list.txt", "000.png", "no label"), {}),
    T("separator-empty", {"train_dataset.separator": ""}, "train_dataset", "separator"),
    T("separator-a-number", {"train_dataset.separator": 5}, "train_dataset.separator", "5"),
    T("dataset-root-missing", {"train_dataset.dataset_root": "/nonexistent/ppseg"}, "/nonexistent/ppseg"),
    ("train-dataset-root-is-a-file", lambda x: ["train", "-c", x.config({"train_dataset.dataset_root": x.file("f")})],
     ("dataset_root", "/in/f"), {}),
    T("val-dataset-mode", {"val_dataset.mode": "train"}, "val_dataset.mode"),
    T("val-dataset-file-list-missing", {"val_dataset.file_list": "gone.txt"}, "gone.txt"),
    # ------------------------------------------------------------------ train: transforms
    T("transforms-a-string", {"train_dataset.transforms": "RandomHorizontalFlip"}, "train_dataset.transforms"),
    T("transforms-unknown", {"train_dataset.transforms": [{"type": "RandomFlip"}]},
      "train_dataset.transforms[0]", "RandomFlip"),
    T("transforms-item-a-number", {"train_dataset.transforms": [42]}, "train_dataset.transforms[0]", "42"),
    T("transforms-crop-zero", {"train_dataset.transforms": [{"type": "RandomPaddingCrop", "crop_size": [0, 0]}]},
      "train_dataset.transforms[0]", "crop_size"),
    T("transforms-crop-string", {"train_dataset.transforms": [{"type": "RandomPaddingCrop", "crop_size": "big"}]},
      "train_dataset.transforms[0]", "crop_size", "'big'"),
    T("transforms-crop-huge", {"train_dataset.transforms": [{"type": "RandomPaddingCrop",
                                                             "crop_size": [100000, 100000]}]},
      "train_dataset.transforms[0]", "crop_size", "100000"),
    T("transforms-resize-negative", {"val_dataset.transforms": [{"type": "Resize", "target_size": [-1, 10]}]},
      "val_dataset.transforms[0]", "target_size"),
    T("transforms-normalize", {"train_dataset.transforms": [{"type": "Normalize"}]},
      "train_dataset.transforms[0]", "Normalize"),
    T("transforms-prob-nan", {"train_dataset.transforms": [{"type": "RandomHorizontalFlip", "prob": NAN}]},
      "train_dataset.transforms[0]", "prob", "nan"),
    # ------------------------------------------------------------------ train: optimizer
    T("optimizer-a-string", {"optimizer": "AdamW"}, "optimizer", "'AdamW'"),
    T("optimizer-unknown-type", {"optimizer.type": "Adamw"}, "optimizer.type", "did you mean"),
    T("optimizer-unknown-key", {"optimizer.momentum": 0.9}, "optimizer.momentum", "unknown key"),
    T("weight-decay-string", {"optimizer.weight_decay": "abc"}, "optimizer.weight_decay", "'abc'"),
    T("weight-decay-negative", {"optimizer.weight_decay": -1.0}, "optimizer", "weight_decay", "-1"),
    T("weight-decay-nan", {"optimizer.weight_decay": NAN}, "optimizer", "weight_decay", "nan"),
    T("weight-decay-inf", {"optimizer.weight_decay": INF}, "optimizer", "weight_decay", "inf"),
    T("betas-one-value", {"optimizer.betas": [0.9]}, "optimizer.betas", "[0.9]"),
    T("betas-out-of-range", {"optimizer.betas": [2.0, 0.999]}, "optimizer", "beta"),
    T("eps-negative", {"optimizer.eps": -1.0}, "optimizer", "eps"),
    T("sgd-momentum-nan", {"optimizer": {"type": "SGD", "momentum": NAN}}, "optimizer", "momentum", "nan"),
    T("param-groups-a-string", {"optimizer.param_groups": "head"}, "optimizer.param_groups", "'head'"),
    T("param-groups-no-match", {"optimizer.param_groups": [{"lr_mult": 2}]}, "optimizer", "param_groups[0]", "match"),
    T("param-groups-negative-lr-mult", {"optimizer.param_groups": [{"match": "head", "lr_mult": -1}]},
      "optimizer", "param_groups[0].lr_mult", "-1"),
    T("param-groups-inf-lr-mult", {"optimizer.param_groups": [{"match": "head", "lr_mult": INF}]},
      "optimizer", "param_groups[0].lr_mult", "inf"),
    T("param-groups-unknown-key", {"optimizer.param_groups": [{"match": "head", "lr": 1}]},
      "optimizer", "param_groups[0]", "'lr'"),
    # ------------------------------------------------------------------ train: lr_scheduler (issue item 4)
    T("lr-scheduler-missing", {"lr_scheduler": DEL}, "lr_scheduler"),
    T("lr-nan", {"lr_scheduler.learning_rate": NAN}, "lr_scheduler", "learning_rate", "nan"),
    T("lr-inf", {"lr_scheduler.learning_rate": INF}, "lr_scheduler", "learning_rate", "inf"),
    T("lr-minus-inf", {"lr_scheduler.learning_rate": -INF}, "lr_scheduler", "learning_rate", "-inf"),
    T("lr-nan-as-text", {"lr_scheduler.learning_rate": "nan"}, "lr_scheduler", "learning_rate", "nan"),
    T("lr-a-word", {"lr_scheduler.learning_rate": "fast"}, "lr_scheduler.learning_rate", "'fast'"),
    T("lr-zero", {"lr_scheduler.learning_rate": 0}, "lr_scheduler", "learning_rate", "0"),
    T("lr-negative", {"lr_scheduler.learning_rate": -0.1}, "lr_scheduler", "learning_rate", "-0.1"),
    T("lr-a-list", {"lr_scheduler.learning_rate": [0.1]}, "lr_scheduler.learning_rate", "[0.1]"),
    T("lr-missing", {"lr_scheduler.learning_rate": DEL}, "lr_scheduler", "learning_rate"),
    T("warmup-iters-negative", {"lr_scheduler.warmup_iters": -1}, "lr_scheduler", "warmup_iters", "-1"),
    T("warmup-iters-float", {"lr_scheduler.warmup_iters": 2.5}, "lr_scheduler.warmup_iters", "2.5"),
    T("warmup-start-lr-nan", {"lr_scheduler.warmup_start_lr": NAN}, "lr_scheduler", "warmup_start_lr", "nan"),
    T("warmup-start-lr-negative", {"lr_scheduler.warmup_start_lr": -1.0}, "lr_scheduler", "warmup_start_lr", "-1"),
    T("end-lr-nan", {"lr_scheduler.end_lr": NAN}, "lr_scheduler", "end_lr", "nan"),
    T("end-lr-negative", {"lr_scheduler.end_lr": -0.5}, "lr_scheduler", "end_lr", "-0.5"),
    T("power-nan", {"lr_scheduler.power": NAN}, "lr_scheduler", "power", "nan"),
    T("power-inf", {"lr_scheduler.power": INF}, "lr_scheduler", "power", "inf"),
    T("decay-steps-zero", {"lr_scheduler.decay_steps": 0}, "lr_scheduler", "decay_steps", "0"),
    T("lr-scheduler-unknown-type", {"lr_scheduler.type": "StepDecay"}, "lr_scheduler.type", "StepDecay"),
    T("cosine-tmax-zero", {"lr_scheduler": {"type": "CosineAnnealingDecay", "learning_rate": 0.01, "T_max": 0}},
      "lr_scheduler", "T_max"),
    T("cosine-eta-min-nan", {"lr_scheduler": {"type": "CosineAnnealingDecay", "learning_rate": 0.01,
                                              "eta_min": NAN}}, "lr_scheduler", "nan"),
    # ------------------------------------------------------------------ train: loss
    T("loss-a-string", {"loss": "CrossEntropyLoss"}, "loss", "'CrossEntropyLoss'"),
    T("loss-types-empty", {"loss.types": []}, "loss.types", "non-empty"),
    T("loss-types-a-dict", {"loss.types": {"type": "CrossEntropyLoss"}}, "loss.types"),
    T("loss-unknown-type", {"loss.types": [{"type": "CrossEntropy"}]}, "loss.types[0].type", "did you mean"),
    T("loss-unknown-key", {"loss.typez": CE}, "loss.typez", "unknown key"),
    T("loss-coef-strings", {"loss.coef": ["a"]}, "loss.coef", "'a'"),
    T("loss-coef-nan", {"loss.coef": [NAN]}, "loss.coef", "nan"),
    T("loss-coef-inf", {"loss.coef": [INF]}, "loss.coef", "inf"),
    T("loss-coef-negative", {"loss.coef": [-1.0]}, "loss.coef", "-1"),
    T("loss-weight-wrong-length", {"loss.types": [{"type": "CrossEntropyLoss", "weight": [1.0, 2.0]}]},
      "loss", "weight", "3"),
    T("loss-weight-nan", {"loss.types": [{"type": "CrossEntropyLoss", "weight": [1.0, NAN, 1.0]}]},
      "loss.types[0]", "weight"),
    # ------------------------------------------------------------------ train: train section
    T("train-section-a-string", {"train": "fast"}, "train", "'fast'"),
    T("num-workers-negative", {"train.num_workers": -1}, "train", "num_workers", "-1"),
    T("num-workers-string", {"train.num_workers": "two"}, "train.num_workers", "'two'"),
    T("log-iters-zero", {"train.log_iters": 0}, "train", "log_iters", "0"),
    T("save-interval-zero", {"train.save_interval": 0}, "train", "save_interval", "0"),
    T("eval-interval-negative", {"train.eval_interval": -1}, "train", "eval_interval", "-1"),
    T("threads-zero", {"train.threads": 0}, "train", "threads", "0"),
    T("device-tpu", {"train.device": "tpu"}, "train.device", "'tpu'"),
    T("amp-fp8", {"train.amp": "fp8"}, "train.amp", "'fp8'"),
    T("ema-decay-nan", {"train.ema_decay": NAN}, "train", "ema_decay", "nan"),
    T("clip-grad-norm-nan", {"train.clip_grad_norm": NAN}, "train", "clip_grad_norm", "nan"),
    T("clip-grad-norm-negative", {"train.clip_grad_norm": -1.0}, "train", "clip_grad_norm", "-1"),
    T("keep-checkpoint-max-negative", {"train.keep_checkpoint_max": -1}, "train", "keep_checkpoint_max", "-1"),
    T("train-unknown-key", {"train.epochs": 3}, "train.epochs", "unknown key"),
    T("save-dir-a-number", {"train.save_dir": 42}, "train.save_dir", "42"),
    # ------------------------------------------------------------------ train: segmentor section
    T("segmentor-a-string", {"segmentor": "whole"}, "segmentor", "'whole'"),
    T("segmentor-mean-one-value", {"segmentor.mean": [0.5]}, "segmentor", "mean"),
    T("segmentor-std-zero", {"segmentor.std": [0, 0, 0]}, "segmentor", "std"),
    T("segmentor-std-nan", {"segmentor.std": [NAN, 0.5, 0.5]}, "segmentor", "std", "nan"),
    T("segmentor-mean-inf", {"segmentor.mean": [INF, 0.5, 0.5]}, "segmentor", "mean", "inf"),
    T("segmentor-mode-tile", {"segmentor.mode": "tile"}, "segmentor.mode", "'tile'"),
    T("segmentor-scales-empty", {"segmentor.scales": []}, "segmentor", "scales"),
    T("segmentor-slide-crop-zero", {"segmentor": {"mode": "slide", "crop_size": [0, 0], "stride": [1, 1]}},
      "segmentor", "crop_size"),
    # ------------------------------------------------------------------ train: config files, --opts, --resume
    ("train-config-missing", lambda x: ["train", "-c", str(x.tmp / "nope.yml")], ("nope.yml", "not found"), {}),
    ("train-config-is-a-folder", lambda x: ["train", "-c", x.folder("cfg.yml")], ("cfg.yml", "folder"), {}),
    ("train-config-empty", lambda x: ["train", "-c", x.file("empty.yml")], ("empty.yml",), {}),
    ("train-config-a-list", lambda x: ["train", "-c", x.file("list.yml", "- 1\n- 2\n")], ("list.yml", "mapping"), {}),
    ("train-config-binary", lambda x: ["train", "-c", x.file("bin.yml", bytes(range(256)))], ("bin.yml",), {}),
    ("train-config-bad-yaml", lambda x: ["train", "-c", x.file("bad.yml", "a: [1, 2\nb: }")],
     ("bad.yml", "invalid YAML"), {}),
    ("train-config-tab-indent", lambda x: ["train", "-c", x.file("tab.yml", "model:\n\ttype: x\n")],
     ("tab.yml", "invalid YAML"), {}),
    ("train-config-base-missing", lambda x: ["train", "-c", x.file("b.yml", "_base_: gone.yml\n")],
     ("b.yml", "gone.yml"), {}),
    ("train-config-base-a-number", lambda x: ["train", "-c", x.file("b.yml", "_base_: 42\n")], ("b.yml", "_base_"), {}),
    ("train-config-base-itself", lambda x: ["train", "-c", x.file("self.yml", "_base_: self.yml\n")],
     ("self.yml", "circular"), {}),
    ("train-opts-no-equals", lambda x: ["train", "-c", x.config({}), "--opts", "iters"], ("--opts", "'iters'"), {}),
    ("train-opts-empty-key", lambda x: ["train", "-c", x.config({}), "--opts", "=5"], ("--opts", "'=5'"), {}),
    ("train-opts-empty-part", lambda x: ["train", "-c", x.config({}), "--opts", "model..type=x"],
     ("--opts", "model..type"), {}),
    ("train-opts-into-a-value", lambda x: ["train", "-c", x.config({}), "--opts", "model.type.x=1"],
     ("--opts", "model.type"), {}),
    ("train-opts-into-a-list", lambda x: ["train", "-c", x.config({}), "--opts", "loss.types.0.type=X"],
     ("--opts", "loss.types"), {}),
    ("train-opts-broken-yaml", lambda x: ["train", "-c", x.config({}), "--opts", "iters=[1,"], ("iters", "'[1,'"), {}),
    ("train-opts-unknown-key", lambda x: ["train", "-c", x.config({}), "--opts", "optimizer.lr=1"],
     ("--opts", "optimizer.lr", "unknown key"), {}),
    ("train-opts-nan-lr", lambda x: ["train", "-c", x.config({}), "--opts", "lr_scheduler.learning_rate=.nan"],
     ("--opts", "learning_rate", "nan"), {}),
    ("train-resume-no-checkpoint", lambda x: ["train", "-c", x.config({}), "--resume"], ("--resume", "latest.pt"), {}),
    ("train-resume-text-file", lambda x: ["train", "-c", x.config({}), "--resume", x.file("ck.pt", "hello")],
     ("ck.pt",), {}),
    ("train-resume-zero-bytes", lambda x: ["train", "-c", x.config({}), "--resume", x.file("ck.pt")], ("ck.pt",), {}),
    ("train-resume-a-weights-file", lambda x: ["train", "-c", x.config({}), "--resume", x.weights],
     ("best_model.pt", "not a training checkpoint"), {}),
    ("train-resume-a-folder", lambda x: ["train", "-c", x.config({}), "--resume", x.folder("ckdir")],
     ("--resume", "ckdir"), {}),
    ("train-resume-truncated", lambda x: ["train", "-c", x.config({}), "--resume",
                                          x.truncated(str(x.root / "run" / "checkpoints" / "latest.pt"))],
     ("trunc.pt",), {}),
    ("train-resume-past-iters", lambda x: ["train", "-c", x.config({"iters": 1}), "--resume", str(
        x.root / "run" / "checkpoints" / "latest.pt")], ("latest.pt", "iteration 2", "iters 1"), {}),
    ("train-resume-another-model", lambda x: ["train", "-c", x.config({"model.type": "lraspp_mobilenetv3_small"}),
                                              "--resume", str(x.root / "run" / "checkpoints" / "latest.pt")],
     ("latest.pt", "lraspp_mobilenetv3_small"), {}),
    ("train-save-dir-empty", lambda x: ["train", "-c", x.config({}), "--save-dir", ""], ("--save-dir", "empty"), {}),
    # ------------------------------------------------------------------ train: bad dataset files, found while training
    ("train-labels-out-of-range", _all_labels(9), ("labels/train/", "9"), {"failed_run": True}),
    ("train-images-are-text", _all_images(b"this is not an image\n"), ("images/train/",), {"failed_run": True}),
    ("train-images-zero-bytes", _all_images(b""), ("images/train/", "empty"), {"failed_run": True}),
    ("train-labels-wrong-size", lambda x: (
        [f.write_bytes(png(np.zeros((10, 10), np.uint8))) for f in (x.data_copy() / "labels" / "train").glob("*.png")],
        ["train", "-c", x.config({}, data=x.data_copy())])[1], ("labels/train/", "10x10"), {"failed_run": True}),
    ("train-labels-rgb", lambda x: (
        [f.write_bytes(png(np.dstack([np.zeros((48, 64), np.uint8), np.ones((48, 64), np.uint8),
                                      np.full((48, 64), 2, np.uint8)]))) for f in
         (x.data_copy() / "labels" / "train").glob("*.png")],
        ["train", "-c", x.config({}, data=x.data_copy())])[1], ("labels/train/", "colour"), {"failed_run": True}),

    # ------------------------------------------------------------------ val
    V("model-missing", lambda x: ["--model", str(x.tmp / "gone.pt")], "gone.pt", "not found"),
    V("model-empty-folder", lambda x: ["--model", x.folder("wdir")], "wdir", "best_model.pt"),
    V("model-text", lambda x: ["--model", x.file("w.pt", "hello")], "w.pt", "not a ppseg weights file"),
    V("model-zero-bytes", lambda x: ["--model", x.file("w.pt")], "w.pt"),
    V("model-zip", lambda x: ["--model", x.zip_junk()], "junk.pt"),
    V("model-truncated", lambda x: ["--model", x.truncated(x.weights)], "trunc.pt", "truncated"),
    V("model-pickle", lambda x: ["--model", x.evil_pickle("evil.pt")], "evil.pt"),
    V("model-is-the-config", lambda x: ["--model", x.cfg], "cfg.yml"),
    V("scales-zero", lambda x: ["--model", x.weights, "--aug-eval", "--scales", "0"], "--scales", "0"),
    V("scales-nan", lambda x: ["--model", x.weights, "--aug-eval", "--scales", "nan"], "--scales", "nan"),
    V("scales-inf", lambda x: ["--model", x.weights, "--aug-eval", "--scales", "inf"], "--scales", "inf"),
    V("scales-huge", lambda x: ["--model", x.weights, "--aug-eval", "--scales", "1e6"], "--scales", "1000000"),
    V("scales-without-aug", lambda x: ["--model", x.weights, "--scales", "1.0"], "--scales", "--aug-eval"),
    V("crop-size-zero", lambda x: ["--model", x.weights, "--slide", "--crop-size", "0", "0", "--stride", "1", "1"],
      "--crop-size", "crop_size"),
    V("stride-bigger-than-crop", lambda x: ["--model", x.weights, "--slide", "--crop-size", "32", "32",
                                            "--stride", "64", "64"], "stride", "crop_size"),
    V("stride-zero", lambda x: ["--model", x.weights, "--slide", "--crop-size", "32", "32", "--stride", "0", "0"],
      "--stride", "stride"),
    V("slide-without-crop", lambda x: ["--model", x.weights, "--slide"], "--slide", "--crop-size"),
    V("crop-without-slide", lambda x: ["--model", x.weights, "--crop-size", "32", "32"], "--crop-size", "--slide"),
    V("num-workers-negative", lambda x: ["--model", x.weights, "--num-workers", "-1"], "--num-workers", "-1"),
    V("vim-on-lraspp", lambda x: ["--model", x.weights, "--postprocess", "vim"], "forward_lowres"),
    V("no-val-dataset", lambda x: ["-c", x.config({"val_dataset": DEL}), "--model", x.weights], "val_dataset"),
    V("json-under-a-file", lambda x: ["--model", x.weights, "--json", x.file("f") + "/m.json"], "--json"),
    V("json-empty", lambda x: ["--model", x.weights, "--json", ""], "--json", "empty"),
    ("val-labels-out-of-range", _val_data(lambda d: (d / "labels" / "val" / "001.png").write_bytes(
        png(np.full((48, 64), 7, np.uint8)))), ("labels/val/001.png", "7"), {}),
    ("val-image-is-text", _val_data(lambda d: (d / "images" / "val" / "001.png").write_text("text")),
     ("images/val/001.png",), {}),
    ("val-label-missing", _val_data(lambda d: (d / "labels" / "val" / "001.png").unlink()),
     ("val.txt", "001.png"), {}),
    ("val-image-1x1", _val_data(lambda d: [(d / "images" / "val" / "001.png").write_bytes(
        png(np.zeros((1, 1, 3), np.uint8)))]), ("001.png", "1x1"), {}),

    # ------------------------------------------------------------------ predict
    P("input-missing", lambda x: ["--model", x.weights, "--input", str(x.tmp / "nope.png")], "--input", "nope.png"),
    P("input-empty-folder", lambda x: ["--model", x.weights, "--input", x.folder("empty")], "--input", "no images"),
    P("input-glob-no-match", lambda x: ["--model", x.weights, "--input", str(x.tmp / "*.png")], "--input", "*.png"),
    P("input-text-file", lambda x: ["--model", x.weights, "--input", x.file("a.png", "text")], "a.png"),
    P("input-zero-bytes", lambda x: ["--model", x.weights, "--input", x.file("a.png")], "a.png", "empty"),
    P("input-is-the-config", lambda x: ["--model", x.weights, "--input", x.cfg], "cfg.yml"),
    P("input-folder-one-bad", lambda x: ["--model", x.weights, "--input", x.folder(
        "imgs", {"a.png": png(np.zeros((40, 40, 3), np.uint8)), "b.png": b"\x89PNG\r\n\x1a\n broken"})], "b.png"),
    P("alpha-7", lambda x: ["--model", x.weights, "--input", x.img, "--alpha", "7"], "--alpha", "7"),
    P("alpha-negative", lambda x: ["--model", x.weights, "--input", x.img, "--alpha", "-0.1"], "--alpha", "-0.1"),
    P("alpha-nan", lambda x: ["--model", x.weights, "--input", x.img, "--alpha", "nan"], "--alpha", "nan"),
    P("model-missing", lambda x: ["--model", str(x.tmp / "gone.pt"), "--input", x.img], "gone.pt"),
    P("model-folder", lambda x: ["--model", x.folder("wdir"), "--input", x.img], "wdir"),
    P("model-truncated", lambda x: ["--model", x.truncated(x.weights), "--input", x.img], "trunc.pt"),
    P("model-zip", lambda x: ["--model", x.zip_junk(), "--input", x.img], "junk.pt"),
    P("scales-nan", lambda x: ["--model", x.weights, "--input", x.img, "--aug-pred", "--scales", "nan"],
      "--scales", "nan"),
    P("scales-negative", lambda x: ["--model", x.weights, "--input", x.img, "--aug-pred", "--scales", "-1"],
      "--scales", "-1"),
    P("stride-bigger-than-crop", lambda x: ["--model", x.weights, "--input", x.img, "--slide", "--crop-size", "16",
                                            "16", "--stride", "17", "16"], "stride", "crop_size"),
    P("no-dataset-section", lambda x: ["-c", x.config({"val_dataset": DEL, "train_dataset": DEL}),
                                       "--model", x.weights, "--input", x.img], "val_dataset"),
    P("num-workers-negative", lambda x: ["--model", x.weights, "--input", x.img, "--num-workers", "-1"],
      "--num-workers", "-1"),
    P("save-dir-empty", lambda x: ["--model", x.weights, "--input", x.img, "--save-dir", ""], "--save-dir", "empty"),

    # ------------------------------------------------------------------ export
    E("opset-3", lambda x: ["--model", x.weights, "--opset", "3"], "--opset", "3"),
    E("opset-99", lambda x: ["--model", x.weights, "--opset", "99"], "--opset", "99"),
    E("input-shape-4-channels", lambda x: ["--model", x.weights, "--input-shape", "1", "4", "64", "64"],
      "--input-shape", "3 colour channels"),
    E("input-shape-batch-0", lambda x: ["--model", x.weights, "--input-shape", "0", "3", "64", "64"],
      "--input-shape", "N=0"),
    E("quantize-without-calib", lambda x: ["--model", x.weights, "--quantize", "int8"], "--quantize", "--calib-data"),
    E("calib-without-quantize", lambda x: ["--model", x.weights, "--calib-data", x.folder("cal")], "--calib-data"),
    E("calib-data-empty", lambda x: ["--model", x.weights, "--quantize", "int8", "--calib-data", x.folder("cal")],
      "--calib-data", "no images"),
    E("calib-data-missing", lambda x: ["--model", x.weights, "--quantize", "int8", "--calib-data",
                                       str(x.tmp / "nocal")], "nocal"),
    E("calib-images-zero", lambda x: ["--model", x.weights, "--quantize", "int8", "--calib-data",
                                      str(x.data / "images" / "val"), "--calib-images", "0"], "--calib-images", "0"),
    E("calib-images-negative", lambda x: ["--model", x.weights, "--quantize", "int8", "--calib-data",
                                          str(x.data / "images" / "val"), "--calib-images", "-5"],
      "--calib-images", "-5"),
    E("calib-image-broken", lambda x: ["--model", x.weights, "--quantize", "int8", "--calib-data", x.folder(
        "cal", {"a.png": b"not a png"})], "a.png"),
    E("model-text", lambda x: ["--model", x.file("w.pt", "hello")], "w.pt"),
    E("model-truncated", lambda x: ["--model", x.truncated(x.weights)], "trunc.pt"),
    E("model-folder", lambda x: ["--model", x.folder("wdir")], "wdir"),
    E("model-missing", lambda x: ["--model", str(x.tmp / "gone.pt")], "gone.pt"),
    E("vim-on-lraspp", lambda x: ["--model", x.weights, "--output-op", "vim"], "vim", "forward_lowres"),
    E("val-transforms-not-exportable", lambda x: [
        "-c", x.config({"val_dataset.transforms": [{"type": "RandomHorizontalFlip"}]}), "--model", x.weights],
      "RandomHorizontalFlip"),
    E("json-is-a-folder", lambda x: ["--model", x.weights, "--json", x.folder("jdir")], "--json"),
    E("out-empty", lambda x: ["--model", x.weights, "--out", ""], "--out", "empty"),

    # ------------------------------------------------------------------ bench
    B("threads-zero", lambda x: ["--model", "pp_humanseg_lite_v1", "--threads", "0"], "--threads", "'0'"),
    B("threads-negative", lambda x: ["--model", "pp_humanseg_lite_v1", "--threads", "-1"], "--threads", "'-1'"),
    B("threads-words", lambda x: ["--model", "pp_humanseg_lite_v1", "--threads", "a,b"], "--threads", "'a,b'"),
    B("threads-empty", lambda x: ["--model", "pp_humanseg_lite_v1", "--threads", ","], "--threads"),
    B("runs-negative", lambda x: ["--model", "pp_humanseg_lite_v1", "--runs", "-1"], "--runs", "-1"),
    B("runs-zero", lambda x: ["--model", "pp_humanseg_lite_v1", "--runs", "0"], "--runs", "0"),
    B("warmup-negative", lambda x: ["--model", "pp_humanseg_lite_v1", "--warmup", "-1"], "--warmup", "-1"),
    B("backend-unknown", lambda x: ["--model", "pp_humanseg_lite_v1", "--backends", "tensorflow"],
      "--backends", "tensorflow"),
    B("backend-empty", lambda x: ["--model", "pp_humanseg_lite_v1", "--backends", ","], "--backends"),
    B("num-classes-zero", lambda x: ["--model", "pp_humanseg_lite_v1", "--num-classes", "0"], "--num-classes", "0"),
    B("num-classes-huge", lambda x: ["--model", "pp_humanseg_lite_v1", "--num-classes", "1000000000"],
      "--num-classes", "1000000000"),
    B("model-unknown", lambda x: ["--model", "pp_humanseg_lite"], "pp_humanseg_lite"),
    B("weights-missing", lambda x: ["--model", "pp_humanseg_lite_v1", "--weights", str(x.tmp / "gone.pt")],
      "--weights", "gone.pt"),
    B("weights-text", lambda x: ["--model", "pp_humanseg_lite_v1", "--weights", x.file("w.pt", "x")], "w.pt"),
    B("weights-empty-folder", lambda x: ["--model", "pp_humanseg_lite_v1", "--weights", x.folder("wdir")], "wdir"),
    B("weights-of-another-model", lambda x: ["--model", "pp_humanseg_lite_v1", "--weights", x.weights],
      "best_model.pt", "lraspp_mobilenetv3_large"),
    B("images-missing", lambda x: ["--model", "pp_humanseg_lite_v1", "--images", str(x.tmp / "nope")],
      "--images", "nope"),
    B("images-empty-folder", lambda x: ["--model", "pp_humanseg_lite_v1", "--images", x.folder("e")], "--images"),
    B("images-text", lambda x: ["--model", "pp_humanseg_lite_v1", "--images", x.file("a.png", "t")], "a.png"),
    B("quantize-without-calib", lambda x: ["--model", "pp_humanseg_lite_v1", "--quantize", "int8"], "--quantize"),
    B("calib-images-zero", lambda x: ["--model", "pp_humanseg_lite_v1", "--backends", "onnxruntime", "--quantize",
                                      "int8", "--calib-data", str(x.data / "images" / "val"), "--calib-images", "0"],
      "--calib-images", "0"),
    B("opts-without-config", lambda x: ["--model", "pp_humanseg_lite_v1", "--opts", "a=1"], "--opts"),
    B("config-missing", lambda x: ["-c", str(x.tmp / "nope.yml")], "nope.yml"),
    B("config-bad-model", lambda x: ["-c", x.config({"model.type": "nope_net"})], "model.type", "nope_net"),
    B("vim-on-lraspp", lambda x: ["--model", "lraspp_mobilenetv3_small", "--output-op", "vim"], "vim"),
    B("json-empty", lambda x: ["--model", "pp_humanseg_lite_v1", "--json", ""], "--json", "empty"),

    # ------------------------------------------------------------------ convert
    C("src-missing", lambda x: ["--from", "paddle", str(x.tmp / "m.pdparams"), "--model", "pp_mobileseg_tiny"],
      "m.pdparams", "not found"),
    C("src-folder", lambda x: ["--from", "paddle", x.folder("m.pdparams"), "--model", "pp_mobileseg_tiny"],
      "m.pdparams"),
    C("src-zero-bytes", lambda x: ["--from", "paddle", x.file("m.pdparams"), "--model", "pp_mobileseg_tiny"],
      "m.pdparams"),
    C("src-text", lambda x: ["--from", "paddle", x.file("m.pdparams", "hello"), "--model", "pp_mobileseg_tiny"],
      "m.pdparams"),
    C("src-pickle-code", lambda x: ["--from", "paddle", x.evil_pickle("m.pdparams"), "--model", "pp_mobileseg_tiny"],
      "m.pdparams", "print"),
    C("src-pickle-not-a-dict", lambda x: ["--from", "paddle", x.file("m.pdparams", pickle.dumps([1, 2], protocol=2)),
                                          "--model", "pp_mobileseg_tiny"], "m.pdparams"),
    C("src-pickle-dict-of-strings", lambda x: ["--from", "paddle", x.file("m.pdparams", pickle.dumps(
        {"backbone.conv.weight": "not an array"}, protocol=2)), "--model", "pp_mobileseg_tiny"], "m.pdparams"),
    C("out-empty", lambda x: ["--from", "paddle", x.file("m.pdparams", "x"), "--model", "pp_mobileseg_tiny",
                              "--out", ""], "--out", "empty"),
    C("mmseg-zip-junk", lambda x: ["--from", "mmseg", x.zip_junk("m.pth"), "--model", "pp_mobileseg_tiny"], "m.pth"),
    C("mmseg-truncated", lambda x: ["--from", "mmseg", x.truncated(x.weights, "m.pth"), "--model",
                                    "pp_mobileseg_tiny"], "m.pth"),
    C("mmseg-ppseg-weights", lambda x: ["--from", "mmseg", x.weights, "--model", "pp_mobileseg_tiny"],
      "best_model.pt"),
    C("model-unknown", lambda x: ["--from", "paddle", x.file("m.pdparams", "x"), "--model", "pp_mobilseg_tiny"],
      "pp_mobilseg_tiny", "did you mean"),
    C("num-classes-zero", lambda x: ["--from", "paddle", x.file("m.pdparams", "x"), "--model", "pp_mobileseg_tiny",
                                     "--num-classes", "0"], "--num-classes", "0"),
    C("num-classes-huge", lambda x: ["--from", "paddle", x.evil_pickle("m.pdparams"), "--model", "pp_mobileseg_tiny",
                                     "--num-classes", "1000000000"], "1000000000"),
    C("opts-no-equals", lambda x: ["--from", "paddle", x.file("m.pdparams", "x"), "--model", "pp_mobileseg_tiny",
                                   "--opts", "relu6"], "--opts", "'relu6'"),
    C("opts-sub-key", lambda x: ["--from", "paddle", x.file("m.pdparams", "x"), "--model", "pp_mobileseg_tiny",
                                 "--opts", "a.b=1"], "--opts", "a.b"),
    C("opts-twice", lambda x: ["--from", "paddle", x.file("m.pdparams", "x"), "--model", "pp_mobileseg_tiny",
                               "--opts", "a=1", "a=2"], "--opts", "'a'"),
    C("opts-unknown-argument", lambda x: ["--from", "paddle", x.file("m.pdparams", "x"), "--model",
                                          "pp_mobileseg_tiny", "--opts", "depth=3"], "depth"),
    C("opts-bad-value", lambda x: ["--from", "paddle", x.file("m.pdparams", "x"), "--model", "pp_mobileseg_tiny",
                                   "--opts", "aam_gate_act=7"], "aam_gate_act", "7"),
    ("convert-out-is-src", lambda x: ["convert", "--from", "paddle", x.file("m.pdparams", "x"), "--model",
                                      "pp_mobileseg_tiny", "--out", str(x.tmp / "in" / "m.pdparams")],
     ("m.pdparams", "overwrite"), {}),

    # ------------------------------------------------------------------ click-eval (issue 14)
    K("data-missing", lambda x: ["--model", "opencv-grabcut", "--data", str(x.tmp / "nowhere")], "nowhere"),
    K("images-and-masks-unpaired", lambda x: ["--model", "opencv-grabcut", "--data", _grabcut_folder(
        x, masks={"b": np.zeros((40, 48), np.uint8)})], "a"),
    K("mask-empty", lambda x: ["--model", "opencv-grabcut", "--data", _grabcut_folder(
        x, masks={"a": np.zeros((40, 48), np.uint8)})], "a.png"),
    K("mask-all-ignore", lambda x: ["--model", "opencv-grabcut", "--data", _grabcut_folder(
        x, masks={"a": np.full((40, 48), 128, np.uint8)})], "a.png"),
    K("mask-other-size", lambda x: ["--model", "opencv-grabcut", "--data", _grabcut_folder(
        x, masks={"a": np.full((20, 20), 255, np.uint8)})], "a.png"),
    K("semantic-weights", lambda x: ["--model", x.weights, "--data", _grabcut_folder(x)], "best_model.pt",
      "not a click model"),
    K("model-missing", lambda x: ["--model", str(x.tmp / "m.pt"), "--data", _grabcut_folder(x)], "m.pt"),
    K("model-evil-pickle", lambda x: ["--model", x.evil_pickle("evil.pt"), "--data", _grabcut_folder(x)], "evil.pt"),
    K("zoo-unknown", lambda x: ["--model", "zoo:nope", "--data", _grabcut_folder(x)], "zoo:nope"),
    K("max-clicks-zero", lambda x: ["--model", "opencv-grabcut", "--data", _grabcut_folder(x), "--max-clicks", "0"],
      "--max-clicks"),
    K("threshold-above-one", lambda x: ["--model", "opencv-grabcut", "--data", _grabcut_folder(x), "--threshold",
                                        "1.5"], "threshold", "1.5"),
    K("json-is-a-folder", lambda x: ["--model", "opencv-grabcut", "--data", _grabcut_folder(x), "--json",
                                     x.folder("k.json")], "k.json"),
    K("background-negative", lambda x: ["--model", "opencv-grabcut", "--data", _grabcut_folder(x), "--background",
                                        "-1"], "--background", "-1"),
    ("zoo-show-unknown", lambda x: ["zoo", "show", "nope"], ("nope",), {}),
    # ------------------------------------------------------------------ train: interactive configs
    I("source-missing-root", {"train_dataset.sources": [{"dataset_root": "/nowhere", "file_list": "train.txt"}]},
      "/nowhere"),
    I("source-bad-split", {"train_dataset.sources": [{"dataset_root": ".", "file_list": "t.txt", "split": "blobs"}]},
      "split", "blobs"),
    I("source-unknown-key", {"train_dataset.sources": [{"dataset_root": ".", "file_list": "t.txt", "area": 3}]},
      "area"),
    I("crop-size-tiny", {"train_dataset.crop_size": [4, 4]}, "crop_size"),
    I("simulation-negative", {"interactive": {"simulation": {"max_iters": -1}}}, "max_iters", "-1"),
    I("settings-threshold", {"interactive": {"settings": {"threshold": 2}}}, "threshold", "2"),
    I("settings-skip-clicks-word", {"interactive": {"settings": {"skip_clicks": "a"}}}, "skip_clicks", "'a'"),
    I("settings-zoom-in-number", {"interactive": {"settings": {"zoom_in": 3}}}, "zoom_in", "3"),
    I("settings-target-size-int", {"interactive": {"settings": {"target_size": 400}}}, "target_size", "400"),
    I("settings-expansion-nan", {"interactive": {"settings": {"expansion_ratio": NAN}}}, "expansion_ratio", "nan"),
    I("semantic-model", {"model": {"type": "lraspp_mobilenetv3_large"}}, "not a click model"),
    I("wrong-dataset-type", {"train_dataset.type": "FileListDataset"}, "train_dataset.type", "ClickObjects"),
    # ------------------------------------------------------------------ annotate
    A("input-missing", lambda x: [str(x.tmp / "nowhere")], "nowhere", "no such file"),
    A("input-empty-folder", lambda x: [x.folder("empty")], "empty", "no images"),
    A("input-only-text", lambda x: [x.folder("texts", {"a.txt": b"x", "b.png.txt": b"y"})], "texts", "no images"),
    A("input-text-file", lambda x: [x.file("notes.txt", "x")], "notes.txt", "not a folder or a video"),
    A("video-junk", lambda x: [x.file("clip.mp4", b"\x00junk" * 50)], "clip.mp4"),
    A("video-empty", lambda x: [x.file("clip.mp4")], "clip.mp4"),
    A("out-is-a-file", lambda x: [_photos(x), "--out", x.file("out.txt", "x")], "out.txt", "not a folder"),
    A("labels-missing", lambda x: [_photos(x), "--labels", str(x.tmp / "l.txt")], "l.txt"),
    A("labels-empty", lambda x: [_photos(x), "--labels", x.file("l.txt")], "l.txt", "no labels"),
    A("labels-bad-colour", lambda x: [_photos(x), "--labels", x.file("l.txt", "1 car 300 0 0\n")], "l.txt:1", "300"),
    A("labels-duplicate-id", lambda x: [_photos(x), "--labels", x.file("l.txt", "1 a 1 2 3\n1 b 4 5 6\n")],
      "l.txt", "used twice"),
    A("labels-name-with-space", lambda x: [_photos(x), "--labels", x.file("l.txt", "1 two words 0 0 0\n")],
      "l.txt:1"),
    A("labels-not-utf8", lambda x: [_photos(x), "--labels", x.file("l.txt", b"1 caf\xe9 1 2 3\n")], "l.txt", "UTF-8"),
    A("labels-id-too-big", lambda x: [_photos(x), "--labels", x.file("l.txt", "300 car 1 2 3\n")], "l.txt:1", "300"),
    A("model-missing", lambda x: [_photos(x), "--model", str(x.tmp / "m.onnx")], "m.onnx"),
    A("model-semantic", lambda x: [_photos(x), "--model", x.weights], "best_model.pt", "not a click model"),
    A("model-evil-pickle", lambda x: [_photos(x), "--model", x.evil_pickle("evil.pt")], "evil.pt"),
    A("model-zoo-unknown", lambda x: [_photos(x), "--model", "zoo:nope"], "zoo:nope"),
    A("model-text-onnx", lambda x: [_photos(x), "--model", x.file("m.onnx", "not onnx")], "m.onnx"),
    A("export-unknown", lambda x: [_photos(x), "--export", "tiff"], "--export", "tiff"),
    A("export-nothing-annotated", lambda x: [_photos(x), "--export", "coco"], "nothing annotated"),
    A("port-out-of-range", lambda x: [_photos(x), "--port", "70000"], "--port", "70000"),
    A("threads-zero", lambda x: [_photos(x), "--threads", "0"], "--threads", "0"),
    # ------------------------------------------------------------------ check-data
    D("target-missing", lambda x: [str(x.tmp / "nowhere")], "nowhere"),
    D("config-missing", lambda x: [str(x.tmp / "nope.yml")], "nope.yml", "not found"),
    D("config-no-datasets", lambda x: [x.file("c.yml", "batch_size: 2\n")], "c.yml", "train_dataset"),
    D("config-empty", lambda x: [x.file("c.yml")], "c.yml", "train_dataset"),
    D("config-unknown-dataset", lambda x: [x.config({"train_dataset.type": "Folder"})], "train_dataset.type"),
    D("config-unknown-key", lambda x: [x.config({"train_dataset.root": "x"})], "train_dataset.root"),
    D("config-dataset-a-list", lambda x: [x.config({"train_dataset": ["a"]})], "train_dataset", "['a']"),
    D("config-bad-yaml", lambda x: [x.file("c.yml", "a: [")], "c.yml", "invalid YAML"),
    D("config-not-utf8", lambda x: [x.file("c.yml", b"a: caf\xe9\n")], "c.yml", "UTF-8"),
    D("config-num-classes-zero", lambda x: [x.config({"train_dataset.num_classes": 0})], "num_classes"),
    D("opts-with-a-folder", lambda x: [str(x.data), "--opts", "iters=3"], "--opts"),
    D("num-classes-with-a-config", lambda x: [x.cfg, "--num-classes", "5"], "--num-classes"),
    D("num-classes-zero", lambda x: [str(x.data), "--num-classes", "0"], "num_classes", "0"),
    D("ignore-index-negative", lambda x: [str(x.data), "--num-classes", "3", "--ignore-index", "-5"],
      "ignore_index", "-5"),
    D("num-workers-negative", lambda x: [str(x.data), "--num-workers", "-1"], "--num-workers", "-1"),
    D("file-list-binary", lambda x: [x.file("train.txt", b"\xff\xfe\x00junk")], "train.txt"),
    D("file-list-empty", lambda x: [x.file("train.txt")], "train.txt", "no samples"),
    D("labels-out-of-range", lambda x: [str((lambda d: ((d / "labels" / "train" / "002.png").write_bytes(
        png(np.full((48, 64), 7, np.uint8))), d)[1])(x.data_copy())), "--num-classes", "3"], "002.png", "7"),
    D("image-is-text", lambda x: [str((lambda d: ((d / "images" / "val" / "001.png").write_text("txt"), d)[1])(
        x.data_copy())), "--num-classes", "3"], "001.png"),
]


def _snapshot(*roots: Path) -> dict[Path, tuple[int, int]]:
    out = {}
    for root in roots:
        for p in root.rglob("*"):  # hidden files included
            st = p.lstat()
            out[p] = (st.st_size, st.st_mtime_ns) if p.is_file() else (0, 0)
    return out


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_cli_input(case, shared, tmp_path, capfd, monkeypatch):
    name, build, needles, opts = case
    root, data, cfg = shared
    monkeypatch.chdir(tmp_path)  # a default output/<name> would land here
    x = X(tmp_path, root, data, cfg)
    argv = build(x)
    before = _snapshot(tmp_path, root)
    capfd.readouterr()
    code = main(argv)
    out, err = capfd.readouterr()  # file descriptors: a C library's own line on stderr counts too
    cmd = argv[0]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert code == 1, (code, err, out[-2000:])
    assert len(lines) == 1, err
    assert lines[0].startswith(f"ppseg {cmd}: error: "), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert "pwned" not in out
    after = _snapshot(tmp_path, root)
    new = sorted(str(p.relative_to(tmp_path)) for p in set(after) - set(before))
    changed = sorted(str(p) for p in set(before) & set(after) if before[p] != after[p] and p.is_file())
    if opts.get("failed_run"):  # broke while training: a log that says so, no weights, no checkpoint
        assert set(new) <= {"out", "out/config.yaml", "out/train.log", "out/checkpoints"}, new
        assert "[failed]" in (x.out / "train.log").read_text()
        changed = [c for c in changed if not c.startswith(str(x.out))]
    else:
        assert new == [], new
    assert changed == [], changed
    assert not [p for p in set(after) - set(before) if p.name.startswith(".")]


# ============================================================================= usage errors
@pytest.mark.parametrize("argv", [
    ["val", "-c", "x.yml"],                                   # --model missing
    ["bench", "--model", "pp_humanseg_lite_v1", "--input-shape", "1", "3", "64"],
    ["export", "-c", "x.yml", "--model", "m.pt", "--random-weights", "--out", "o"],
    ["predict", "-c", "x.yml", "--model", "m.pt", "--input", "i", "--save-dir", "o", "--alpha", "half"],
    ["convert", "--from", "caffe", "m", "--model", "x", "--out", "o"],
    ["train", "-c", "x.yml", "--resume", "a", "b"],
], ids=["missing-option", "short-input-shape", "exclusive-options", "float-option-a-word", "bad-choice",
        "extra-positional"])
def test_usage_errors_are_argparse_exit_2_without_traceback(argv, capsys):
    """Malformed command lines are argparse's: its usage line, exit code 2, no traceback."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert err.startswith("usage: ppseg") and "error: " in err


# ============================================================================= the Python API
def _seg_file(x: X, edit: Callable[[dict], None]) -> Path:
    import torch

    ckpt = torch.load(x.weights, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, x.tmp / "w.pt")
    return x.tmp / "w.pt"


def _predictor(x: X):
    pytest.importorskip("onnxruntime")
    from ppseg.deploy import Predictor

    return Predictor(ONNX / "model.onnx")


def _predictor_on(x: X, onnx_bytes: bytes, check_hash: bool = False):
    """A Predictor on ``onnx_bytes`` with the legacy export's sidecar next to it."""
    from ppseg.deploy import Predictor

    model = Path(x.file("model.onnx", onnx_bytes))
    shutil.copy(ONNX / "model.json", model.parent / "model.json")
    return Predictor(model, check_hash=check_hash)


def _tiny_model():
    import ppseg

    return ppseg.create_model("pp_humanseg_lite_v1", num_classes=2)


def _api(name: str):
    import ppseg

    return getattr(ppseg, name)


API_CASES: list[tuple[str, Callable[[X], Any], type[BaseException], str]] = [
    # create_model
    ("create_model-unknown", lambda x: _api("create_model")("unet"), ConfigError, r"unet"),
    ("create_model-name-a-number", lambda x: _api("create_model")(42), ConfigError, r"42"),
    ("create_model-name-none", lambda x: _api("create_model")(None), ConfigError, r"None"),
    ("create_model-unknown-kwarg", lambda x: _api("create_model")("pp_humanseg_lite_v1", depth=3),
     ConfigError, r"depth"),
    ("create_model-num-classes-zero", lambda x: _api("create_model")("pp_humanseg_lite_v1", num_classes=0),
     ConfigError, r"num_classes.*0"),
    ("create_model-num-classes-negative", lambda x: _api("create_model")("lraspp_mobilenetv3_small", num_classes=-2),
     ConfigError, r"num_classes.*-2"),
    ("create_model-num-classes-string", lambda x: _api("create_model")("pp_humanseg_lite_v1", num_classes="3"),
     ConfigError, r"num_classes.*'3'"),
    ("create_model-num-classes-bool", lambda x: _api("create_model")("pp_humanseg_lite_v1", num_classes=True),
     ConfigError, r"num_classes.*True"),
    ("create_model-num-classes-float", lambda x: _api("create_model")("pp_humanseg_lite_v1", num_classes=2.5),
     ConfigError, r"num_classes.*2\.5"),
    ("create_model-num-classes-nan", lambda x: _api("create_model")("pp_humanseg_lite_v1", num_classes=float("nan")),
     ConfigError, r"num_classes.*nan"),
    ("create_model-num-classes-huge", lambda x: _api("create_model")("pp_humanseg_lite_v1", num_classes=10**9),
     ConfigError, r"num_classes.*1000000000"),
    ("create_model-channels-negative", lambda x: _api("create_model")("lraspp_mobilenetv3_small", inter_channels=-4),
     ConfigError, r"inter_channels.*-4"),
    ("create_model-channels-zero", lambda x: _api("create_model")("lraspp_mobilenetv3_small", inter_channels=0),
     ConfigError, r"inter_channels.*0"),
    ("create_model-scale-negative", lambda x: _api("create_model")("lraspp_mobilenetv3_small", scale=-1.0),
     ConfigError, r"scale.*-1"),
    ("create_model-scale-zero", lambda x: _api("create_model")("lraspp_mobilenetv3_small", scale=0),
     ConfigError, r"scale.*0"),
    ("create_model-dropout-2", lambda x: _api("create_model")("lraspp_mobilenetv3_small", dropout=2.0),
     ConfigError, r"dropout.*2"),
    ("create_model-literal-wrong", lambda x: _api("create_model")("lraspp_mobilenetv3_small", output_stride=7),
     ConfigError, r"output_stride.*7"),
    # load_segmentor
    ("load_segmentor-missing", lambda x: _api("load_segmentor")(x.tmp / "gone.pt"), PPSegError, r"gone\.pt"),
    ("load_segmentor-folder", lambda x: _api("load_segmentor")(x.folder("wdir")), PPSegError, r"wdir"),
    ("load_segmentor-text", lambda x: _api("load_segmentor")(x.file("w.pt", "hi")), PPSegError, r"w\.pt"),
    ("load_segmentor-zero-bytes", lambda x: _api("load_segmentor")(x.file("w.pt")), PPSegError, r"w\.pt"),
    ("load_segmentor-zip", lambda x: _api("load_segmentor")(x.zip_junk()), PPSegError, r"junk\.pt"),
    ("load_segmentor-truncated", lambda x: _api("load_segmentor")(x.truncated(x.weights)), PPSegError, r"trunc\.pt"),
    ("load_segmentor-pickle", lambda x: _api("load_segmentor")(x.evil_pickle("e.pt")), PPSegError, r"e\.pt"),
    ("load_segmentor-no-model-name", lambda x: _api("load_segmentor")(_seg_file(x, lambda c: c.pop("model"))),
     PPSegError, r"model name"),
    ("load_segmentor-model-name-unknown", lambda x: _api("load_segmentor")(
        _seg_file(x, lambda c: c.update(model="unet"))), PPSegError, r"unet"),
    ("load_segmentor-state-dict-a-list", lambda x: _api("load_segmentor")(
        _seg_file(x, lambda c: c.update(state_dict=[1]))), PPSegError, r"state_dict"),
    ("load_segmentor-state-dict-junk", lambda x: _api("load_segmentor")(
        _seg_file(x, lambda c: c.update(state_dict={"a": 1}))), PPSegError, r"w\.pt"),
    ("load_segmentor-recorded-std-nan", lambda x: _api("load_segmentor")(
        _seg_file(x, lambda c: c["meta"].update(segmentor={"std": [float("nan")] * 3}))), PPSegError, r"std"),
    ("load_segmentor-override-scales", lambda x: _api("load_segmentor")(x.weights, scales=[-1]),
     ConfigError, r"scales"),
    ("load_segmentor-override-mode", lambda x: _api("load_segmentor")(x.weights, mode="tile"), ConfigError, r"tile"),
    ("load_segmentor-override-unknown", lambda x: _api("load_segmentor")(x.weights, flipp=True), ConfigError,
     r"flipp"),
    ("load_segmentor-override-flip-string", lambda x: _api("load_segmentor")(x.weights, flip="yes"), ConfigError,
     r"flip.*'yes'"),
    ("load_segmentor-num-classes-ignored", lambda x: _api("load_segmentor")(x.weights, num_classes=5), ConfigError,
     r"num_classes=5.*3 classes"),
    # load_pretrained
    ("load_pretrained-missing", lambda x: _api("load_pretrained")(_tiny_model(), x.tmp / "gone.pdparams"),
     PPSegError, r"gone\.pdparams"),
    ("load_pretrained-folder", lambda x: _api("load_pretrained")(_tiny_model(), x.folder("m.pdparams")),
     PPSegError, r"m\.pdparams"),
    ("load_pretrained-zero-bytes", lambda x: _api("load_pretrained")(_tiny_model(), x.file("m.pdparams")),
     PPSegError, r"m\.pdparams"),
    ("load_pretrained-text", lambda x: _api("load_pretrained")(_tiny_model(), x.file("m.bin", "hello")),
     PPSegError, r"m\.bin"),
    ("load_pretrained-zip", lambda x: _api("load_pretrained")(_tiny_model(), x.zip_junk("m.pth")),
     PPSegError, r"m\.pth"),
    ("load_pretrained-truncated", lambda x: _api("load_pretrained")(_tiny_model(), x.truncated(x.weights)),
     PPSegError, r"trunc\.pt"),
    ("load_pretrained-pickle", lambda x: _api("load_pretrained")(_tiny_model(), x.evil_pickle("m.pdparams")),
     PPSegError, r"m\.pdparams"),
    ("load_pretrained-another-model", lambda x: _api("load_pretrained")(_tiny_model(), x.weights),
     PPSegError, r"best_model\.pt"),
    ("load_pretrained-source-unknown", lambda x: _api("load_pretrained")(_tiny_model(), x.weights, source="tf"),
     ConfigError, r"'tf'"),
    ("load_pretrained-not-a-model", lambda x: _api("load_pretrained")("model", x.weights), ConfigError, r"model"),
    # deploy.Predictor
    ("Predictor-missing", lambda x: __import__("ppseg.deploy").deploy.Predictor(x.tmp / "m.onnx"), PPSegError,
     r"m\.onnx"),
    ("Predictor-folder", lambda x: __import__("ppseg.deploy").deploy.Predictor(x.folder("m.onnx")), PPSegError,
     r"m\.onnx"),
    ("Predictor-text", lambda x: _predictor_on(x, b"not onnx"), PPSegError, r"model\.onnx"),
    ("Predictor-truncated", lambda x: _predictor_on(x, (ONNX / "model.onnx").read_bytes()[:5000]), PPSegError,
     r"model\.onnx"),
    ("Predictor-no-sidecar", lambda x: __import__("ppseg.deploy").deploy.Predictor(
        x.file("model.onnx", (ONNX / "model.onnx").read_bytes())), PPSegError, r"model\.json"),
    ("Predictor-threads-zero", lambda x: __import__("ppseg.deploy").deploy.Predictor(ONNX / "model.onnx", threads=0),
     ConfigError, r"threads.*0"),
    ("Predictor-threads-float", lambda x: __import__("ppseg.deploy").deploy.Predictor(ONNX / "model.onnx",
                                                                                     threads=1.5),
     ConfigError, r"threads.*1\.5"),
    ("Predictor-threads-string", lambda x: __import__("ppseg.deploy").deploy.Predictor(ONNX / "model.onnx",
                                                                                      threads="2"),
     ConfigError, r"threads.*'2'"),
    ("Predictor-optimization", lambda x: __import__("ppseg.deploy").deploy.Predictor(ONNX / "model.onnx",
                                                                                    optimization="max"),
     ConfigError, r"'max'"),
    ("Predictor-providers-a-string", lambda x: __import__("ppseg.deploy").deploy.Predictor(
        ONNX / "model.onnx", providers="CPUExecutionProvider"), ConfigError, r"providers"),
    ("predict-float64-array", lambda x: _predictor(x).predict(np.zeros((32, 32, 3))), DataError, r"float64"),
    ("predict-bool-array", lambda x: _predictor(x).predict(np.zeros((32, 32, 3), bool)), DataError, r"bool"),
    ("predict-object-array", lambda x: _predictor(x).predict(np.array([[None]])), DataError, r"object"),
    ("predict-5-channels", lambda x: _predictor(x).predict(np.zeros((32, 32, 5), np.uint8)), DataError,
     r"32, 32, 5"),
    ("predict-empty-array", lambda x: _predictor(x).predict(np.zeros((0, 0, 3), np.uint8)), DataError, r"0, 0, 3"),
    ("predict-1d-array", lambda x: _predictor(x).predict(np.zeros(12, np.uint8)), DataError, r"12"),
    ("predict-batch-4d-array", lambda x: _predictor(x).predict(np.zeros((2, 32, 32, 3), np.uint8)), DataError,
     r"2, 32, 32, 3"),
    ("predict-nested-list", lambda x: _predictor(x).predict([[1, 2], [3]]), DataError, r"image"),
    ("predict-none", lambda x: _predictor(x).predict(None), DataError, r"None"),
    ("predict-missing-file", lambda x: _predictor(x).predict(x.tmp / "nope.png"), DataError, r"nope\.png"),
    ("predict-folder", lambda x: _predictor(x).predict(x.folder("imgs")), DataError, r"imgs"),
    ("predict-text-file", lambda x: _predictor(x).predict(x.file("a.png", "text")), DataError, r"a\.png"),
    ("predict-zero-bytes", lambda x: _predictor(x).predict(x.file("a.png")), DataError, r"a\.png"),
    ("predict-output-logits", lambda x: _predictor(x).predict(x.img, output="logits"), ConfigError, r"'logits'"),
    ("predict-probs-from-labels", lambda x: _predictor(x).predict(x.img, output="probs"), ConfigError,
     r"probabilities"),
    ("predict_dir-missing", lambda x: list(_predictor(x).predict_dir(x.tmp / "nodir")), DataError, r"nodir"),
    ("predict_batch-size-zero", lambda x: _predictor(x).predict_batch([x.img], batch_size=0), ConfigError,
     r"batch_size.*0"),
    ("overlay-alpha-7", lambda x: _predictor(x).overlay(x.img, np.zeros((48, 64), np.uint8), alpha=7), ConfigError,
     r"alpha.*7"),
    ("overlay-label-wrong-shape", lambda x: _predictor(x).overlay(x.img, np.zeros((4, 4), np.uint8)), ValueError,
     r"\(4, 4\)"),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_hostile_api_input(case, shared, tmp_path):
    name, call, exc, pattern = case
    root, data, cfg = shared
    x = X(tmp_path, root, data, cfg)
    with pytest.raises(exc, match=pattern) as info:
        call(x)
    assert "\n" not in str(info.value), str(info.value)
