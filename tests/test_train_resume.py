"""Training end to end: exact resume after SIGKILL, run-directory contents, EMA."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from helpers.data import ppseg_cmd, tiny_config, write_config

pytestmark = pytest.mark.slow


def _env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_sigkill_then_resume_gives_the_same_weights(tmp_path, synthetic_data):
    over = {"iters": 14, "model.aux_head": True, "train.ema": True, "train.num_workers": 1,
            "train.eval_interval": 5, "train.save_interval": 3,
            "train_dataset.transforms": [{"type": "RandomHorizontalFlip"},
                                         {"type": "ResizeStepScaling", "min_scale_factor": 0.75,
                                          "max_scale_factor": 1.25, "scale_step_size": 0.25},
                                         {"type": "RandomPaddingCrop", "crop_size": [64, 48]},
                                         {"type": "RandomDistort"}],
            "loss": {"types": [{"type": "MixedLoss", "losses": [{"type": "CrossEntropyLoss"},
                                                                {"type": "LovaszSoftmaxLoss"}],
                                "coef": [0.8, 0.2]}, {"type": "CrossEntropyLoss"}], "coef": [1.0, 0.4]}}
    ref_dir, cut_dir = tmp_path / "ref", tmp_path / "cut"
    ref_cfg = write_config(tmp_path / "ref.yml", tiny_config(synthetic_data, ref_dir, **over))
    cut_cfg = write_config(tmp_path / "cut.yml", tiny_config(synthetic_data, cut_dir, **over))

    subprocess.run(ppseg_cmd("train", "-c", str(ref_cfg)), check=True, env=_env(), capture_output=True)

    proc = subprocess.Popen(ppseg_cmd("train", "-c", str(cut_cfg)), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (cut_dir / "checkpoints" / "iter_6.pt").exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (cut_dir / "last_model.pt").exists(), "the run finished before the kill; the test proves nothing"
    assert not list((cut_dir / "checkpoints").glob(".*.tmp")), "a temp file was left as if complete"

    done = subprocess.run(ppseg_cmd("train", "-c", str(cut_cfg), "--resume"), env=_env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resumed at iter" in done.stdout

    for name in ("last_model.pt", "last_ema_model.pt"):
        a, b = _state(ref_dir / name), _state(cut_dir / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}: {k} differs after kill + resume"


def test_run_directory_contents(tmp_path, synthetic_data):
    cfg = write_config(tmp_path / "c.yml", tiny_config(synthetic_data, tmp_path / "run", **{
        "train.keep_checkpoint_max": 2, "train.save_confusion_matrix": True, "train.tensorboard": True}))
    out = subprocess.run(ppseg_cmd("train", "-c", str(cfg)), env=_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "run"
    for name in ("config.yaml", "train.log", "history.json", "curves.png", "best_model.pt", "last_model.pt",
                 "checkpoints/latest.pt"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "checkpoints").glob("iter_*.pt")) == ["iter_4.pt", "iter_6.pt"]
    assert list(run.glob("confusion_iter_*.png"))
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        pass
    else:
        assert list((run / "tensorboard").glob("events.out.tfevents.*")), "TensorBoard scalars missing"
    log = (run / "train.log").read_text()
    assert "loss=" in log and "ips=" in log and "eta=" in log and "mIoU=" in log
    # a resumed run that is already complete does no more work and keeps the weights
    before = _state(run / "last_model.pt")
    again = subprocess.run(ppseg_cmd("train", "-c", str(cfg), "--resume"), env=_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    after = _state(run / "last_model.pt")
    assert all(torch.equal(before[k], after[k]) for k in before)
