"""Multi-process data-parallel training with torchrun on CPU (gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from helpers.data import ppseg_cmd, tiny_config, write_config

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, synthetic_data):
    # No dropout (aux head off) and CE only, so the loss decomposes over the batch;
    # sync_bn makes BatchNorm see the global batch in both set-ups. SGD, because Adam's
    # g/sqrt(v) blows float-rounding differences of near-zero gradients up into real ones.
    common = {"optimizer": {"type": "SGD", "momentum": 0.9, "weight_decay": 1e-4},
              "lr_scheduler": {"type": "PolynomialDecay", "learning_rate": 0.01},"iters": 4, "model.aux_head": False, "train.sync_bn": True, "train.eval_interval": 4,
              "train.save_interval": 4, "train.log_iters": 1}
    one = write_config(tmp_path / "one.yml", tiny_config(synthetic_data, tmp_path / "one", batch_size=4, **common))
    two = write_config(tmp_path / "two.yml", tiny_config(synthetic_data, tmp_path / "two", batch_size=2, **common))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r1 = subprocess.run(ppseg_cmd("train", "-c", str(one)), env=env, capture_output=True, text=True)
    assert r1.returncode == 0, r1.stderr
    r2 = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                         "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                         "-m", "ppseg", "train", "-c", str(two)], env=env, capture_output=True, text=True)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "2 process(es)" in r2.stdout
    h1 = json.loads((tmp_path / "one" / "history.json").read_text())
    h2 = json.loads((tmp_path / "two" / "history.json").read_text())
    assert h1["iter"] == h2["iter"] == [1, 2, 3, 4]
    assert h2["loss"] == pytest.approx(h1["loss"], rel=1e-4, abs=1e-5)
    # evaluation is sharded over the processes and reduced exactly
    assert h2["miou"] == pytest.approx(h1["miou"], abs=1e-4)
