"""A tiny synthetic dataset and training config for engine / CLI tests, and ``ppseg`` commands."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

COLORS = np.array([[40, 40, 40], [200, 60, 60], [60, 200, 60]], dtype=np.uint8)


def make_synthetic_dataset(root: Path, n_train: int = 8, n_val: int = 2, size: tuple[int, int] = (64, 48),
                           seed: int = 0) -> Path:
    """``n`` images of coloured rectangles; the label is the rectangle's class (3 classes, ignore 255 border)."""
    rng = np.random.default_rng(seed)
    w, h = size
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(n):
            label = np.zeros((h, w), np.uint8)
            for _ in range(3):
                c = int(rng.integers(1, 3))
                x0, y0 = int(rng.integers(0, w - 8)), int(rng.integers(0, h - 8))
                label[y0:y0 + int(rng.integers(6, h // 2)), x0:x0 + int(rng.integers(6, w // 2))] = c
            img = COLORS[label] + rng.integers(0, 30, (h, w, 3), dtype=np.uint8)
            label[0, :] = 255  # a row of ignored pixels
            Image.fromarray(img).save(root / "images" / split / f"{i:03d}.png")
            Image.fromarray(label).save(root / "labels" / split / f"{i:03d}.png")
            lines.append(f"images/{split}/{i:03d}.png labels/{split}/{i:03d}.png")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def tiny_config(data: Path, save_dir: Path, **over) -> dict:
    """A complete, fast training config on :func:`make_synthetic_dataset` data.

    ``over`` sets dotted keys, e.g. ``tiny_config(data, run, **{"train.num_workers": 2})``.
    """
    common = {"type": "FileListDataset", "dataset_root": str(data), "num_classes": 3,
              "class_names": ["background", "red", "green"]}
    cfg = {
        "batch_size": 2,
        "iters": 6,
        "seed": 3,
        "model": {"type": "lraspp_mobilenetv3_large", "inter_channels": 32},
        "train_dataset": {**common, "file_list": str(data / "train.txt"),
                          "transforms": [{"type": "RandomHorizontalFlip"},
                                         {"type": "RandomPaddingCrop", "crop_size": [64, 48]}]},
        "val_dataset": {**common, "file_list": str(data / "val.txt"), "transforms": []},
        "loss": {"types": [{"type": "CrossEntropyLoss"}], "coef": [1.0]},
        "optimizer": {"type": "AdamW", "weight_decay": 0.01},
        "lr_scheduler": {"type": "PolynomialDecay", "learning_rate": 0.002, "warmup_iters": 2},
        "train": {"log_iters": 1, "eval_interval": 3, "save_interval": 2, "num_workers": 0,
                  "save_dir": str(save_dir), "tensorboard": False, "threads": 1},
    }
    return set_dotted(cfg, over)


def set_dotted(cfg: dict, over: dict, delete: object = None) -> dict:
    """``cfg`` with dotted keys set (``{"train.num_workers": 2}``); a value that ``is delete`` removes the key."""
    for key, value in over.items():
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if delete is not None and value is delete:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def ppseg_cmd(*args: str) -> list[str]:
    """``python -m ppseg ARGS`` with this interpreter, for ``subprocess.run``."""
    return [sys.executable, "-m", "ppseg", *args]


def train_tiny_run(root: Path) -> tuple[Path, Path, Path]:
    """A 2-iteration training run on a 4-image synthetic set under ``root``: ``(data, config, run dir)``;
    the shared subject of the hostile-input tables."""
    from ppseg.cli import main

    data = make_synthetic_dataset(root / "data", n_train=4, n_val=2)
    cfg = write_config(root / "cfg.yml", tiny_config(data, root / "run", iters=2, **{"train.eval_interval": 2}))
    assert main(["train", "-c", str(cfg)]) == 0
    return data, cfg, root / "run"


MINI = Path(__file__).resolve().parents[2] / "examples" / "camvid_mini"  # real CamVid images, committed (240 x 180)


def mini_mobileseg_config() -> dict:
    """A PP-MobileSeg-Tiny config on the committed CamVid sample (``examples/camvid_mini``)."""
    repo = MINI.parents[1]
    cfg = yaml.safe_load((repo / "configs" / "demo" / "camvid_mini.yml").read_text())
    cfg["_base_"] = str(repo / "configs" / "lraspp" / "lraspp_mobilenetv3_large_camvid.yml")
    cfg["model"] = {"type": "pp_mobileseg_tiny", "_inherited_": False}
    for key in ("train_dataset", "val_dataset"):
        cfg[key]["dataset_root"] = str(MINI)
        cfg[key]["file_list"] = str(MINI / f"{key.split('_')[0]}.txt")
    return cfg
