"""Every shipped config validates: keys, types, model, losses, optimizer, schedule, transforms."""

from __future__ import annotations

from pathlib import Path

import pytest

from ppseg.config import load_config
from ppseg.data.transforms import build_transforms
from ppseg.engine import build
from ppseg.semantic.segmentor import segmentor_kwargs

CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[1] / "configs").rglob("*.yml") if "_base_" not in p.parts)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_config_validates(path):
    cfg = load_config(path)
    build.check_top_level(cfg)
    build.build_options(cfg)
    build.build_losses(cfg)
    build.optim_spec(cfg)
    if cfg.get("task") == "interactive":  # click models: their datasets and section, without reading data
        from ppseg.interactive.data import ObjectSource
        from ppseg.interactive.task import InteractiveTask

        for key in ("train_dataset", "val_dataset"):
            section = cfg.get(key) or {}
            assert section.get("type") == "ClickObjects"
            for i, src in enumerate(section["sources"]):
                ObjectSource.from_dict(src, f"{key}.sources[{i}]")
            build_transforms(section.get("transforms"), cfg, f"{key}.transforms")
        InteractiveTask.from_config(cfg, None, None)
        name, _ = build.model_spec(cfg)
        from ppseg.registry import model_task

        assert model_task(name) == "interactive"
        return
    segmentor_kwargs(cfg)
    for key in ("train_dataset", "val_dataset"):
        if cfg.get(key):
            meta = build.dataset_meta(cfg, key)
            build_transforms(cfg[key].get("transforms"), cfg, f"{key}.transforms")
    name, kwargs = build.model_spec(cfg, meta.num_classes)
    assert kwargs["num_classes"] == meta.num_classes
    assert "batch_size" in cfg and "iters" in cfg


def test_configs_exist():
    names = {p.name for p in CONFIGS}
    for expected in ("base_ade20k_512x512_80k.yml", "tiny_ade20k_512x512_80k.yml", "base_camvid.yml",
                     "tiny_camvid.yml", "camvid_mini.yml"):
        assert expected in names
