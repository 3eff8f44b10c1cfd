"""The task seam (ppseg.engine.task): config key, per-step RNG and exact resume, best-score direction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from helpers.data import tiny_config, write_config
from ppseg.config import load_config
from ppseg.engine import build, task as task_mod
from ppseg.engine.task import Scores, StepResult, get_task, step_generator
from ppseg.engine.trainer import Trainer
from ppseg.errors import ConfigError
from ppseg.semantic.task import SemanticTask


class NoisyTask(SemanticTask):
    """Semantic segmentation whose step draws random numbers (as click simulation will) and whose
    best model has the LOWEST score (as matting's SAD)."""

    name = "noisy"
    best_score = "err"
    higher_is_better = False
    score_keys = ("err", "miou")
    draws: list[float] = []

    def train_step(self, net, wrapper, batch, *, device, channels_last, autocast, rng):
        step = super().train_step(net, wrapper, batch, device=device, channels_last=channels_last,
                                  autocast=autocast, rng=rng)
        r = float(torch.rand(1, generator=rng))
        NoisyTask.draws.append(r)
        return StepResult(step.loss * (0.5 + r), {**step.terms, "r": r})

    def evaluate(self, wrapper, dataset, **kw) -> Scores:
        scores = super().evaluate(wrapper, dataset, **kw)
        scores.values["err"] = 1.0 - scores.values["miou"]
        return scores


@pytest.fixture
def noisy(monkeypatch):
    monkeypatch.setitem(task_mod.TASKS, "noisy", NoisyTask)
    NoisyTask.draws = []


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_task_key_selects_and_validates(tmp_path, synthetic_data):
    assert get_task("semantic") is SemanticTask
    cfg = load_config(write_config(tmp_path / "a.yml", tiny_config(synthetic_data, tmp_path / "r", task="semantik")))
    with pytest.raises(ConfigError, match=r"a\.yml: task: unknown task 'semantik'.*did you mean 'semantic'"):
        build.check_top_level(cfg)


def test_step_generator_depends_only_on_the_batch_seeds():
    a = torch.rand(3, generator=step_generator([7, 11]))
    assert torch.equal(a, torch.rand(3, generator=step_generator([7, 11])))
    assert not torch.equal(a, torch.rand(3, generator=step_generator([11, 7])))


def test_a_random_step_resumes_exactly_and_the_lowest_score_wins(tmp_path, synthetic_data, noisy):
    over = {"task": "noisy", "iters": 6, "train.eval_interval": 2, "train.save_interval": 3}
    full = Trainer(load_config(write_config(tmp_path / "full.yml", tiny_config(synthetic_data, tmp_path / "full", **over))))
    full.train()
    full_draws = list(NoisyTask.draws)
    assert len(set(full_draws)) == 6  # every step drew its own number

    NoisyTask.draws = []
    part_cfg = load_config(write_config(tmp_path / "part.yml", tiny_config(synthetic_data, tmp_path / "part", **over)))
    Trainer(part_cfg, resume=str(tmp_path / "full" / "checkpoints" / "iter_3.pt")).train()
    assert NoisyTask.draws == full_draws[3:]  # the same draws at the same iterations after the resume
    a, b = _weights(tmp_path / "full" / "last_model.pt"), _weights(tmp_path / "part" / "last_model.pt")
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])

    history = json.loads((tmp_path / "full" / "history.json").read_text())
    assert history["eval_iter"] == [2, 4, 6] and len(history["err"]) == 3 and len(history["miou"]) == 3
    best = _weights(tmp_path / "full" / "best_model.pt")["meta"]
    assert best["task"] == "noisy" and best["err"] == pytest.approx(min(history["err"]))
    assert best["iter"] == history["eval_iter"][history["err"].index(min(history["err"]))]


def test_weights_record_the_task_and_versioned_transforms(tmp_path, synthetic_data):
    val_t = [{"type": "Resize", "target_size": [32, 24]}]
    cfg = tiny_config(synthetic_data, tmp_path / "run", iters=2, **{"val_dataset.transforms": val_t})
    Trainer(load_config(write_config(tmp_path / "c.yml", cfg))).train()
    meta = _weights(tmp_path / "run" / "best_model.pt")["meta"]
    assert meta["task"] == "semantic" and meta["class_names"] == ["background", "red", "green"]
    assert meta["transforms"] == {"version": 1, "transforms": val_t}
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["val_dataset"]["transforms"] == val_t
