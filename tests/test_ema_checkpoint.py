"""Weight EMA (spec §8.4) and checkpoint files (atomic writes, loading errors, pruning)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from ppseg.engine.checkpoint import prune_checkpoints
from ppseg.weights import atomic_save, load_file, load_weights, weights_file
from ppseg.engine.ema import ModelEMA
from ppseg.errors import PPSegError


class Tiny(nn.Module):
    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conv = nn.Conv2d(3, 4, 1)
        self.bn = nn.BatchNorm2d(4)
        self.cls = nn.Conv2d(4, num_classes, 1)

    def forward(self, x):
        return self.cls(self.bn(self.conv(x)))


# ----------------------------------------------------------------------------- EMA


def test_ema_decay_schedule_params_bn_stats_and_int_buffers():
    torch.manual_seed(0)
    model = Tiny()
    max_decay = 0.7
    ema = ModelEMA(model, max_decay=max_decay)
    assert not ema.module.training
    assert all(not p.requires_grad for p in ema.module.parameters())
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for k in range(1, 6):
        with torch.no_grad():  # "training": new weights and BN statistics
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.train()
        model(torch.randn(2, 3, 5, 5) * k)
        ema.update(model, k)
        d = min(1 - 1 / (k + 1), max_decay)  # 0.5, 0.667, 0.7 (capped), 0.7, 0.7
        src = model.state_dict()
        for name, v in expected.items():
            expected[name] = d * v + (1 - d) * src[name] if v.is_floating_point() else src[name].clone()
        got = ema.state_dict()
        for name, v in expected.items():
            torch.testing.assert_close(got[name], v, msg=f"{name} after update {k}")
    assert int(ema.state_dict()["bn.num_batches_tracked"]) == 5
    # the running stats really moved (the check above is not vacuous)
    assert not torch.allclose(ema.state_dict()["bn.running_mean"], torch.zeros(4))


def test_ema_is_an_independent_copy_and_state_round_trip():
    model = Tiny()
    ema = ModelEMA(model)
    with torch.no_grad():
        model.conv.weight.add_(1.0)
    assert not torch.equal(ema.module.conv.weight, model.conv.weight)
    ema.update(model, 1)  # d = 0.5
    other = ModelEMA(Tiny())
    other.load_state_dict(ema.state_dict())
    for k, v in ema.state_dict().items():
        assert torch.equal(other.state_dict()[k], v)


def test_ema_first_update_with_k0_copies_the_model():
    model, ema = Tiny(), ModelEMA(Tiny())
    ema.update(model, 0)  # d = min(0, max) = 0
    for k, v in model.state_dict().items():
        assert torch.equal(ema.state_dict()[k], v)


# ----------------------------------------------------------------------------- atomic_save


def test_atomic_save_writes_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "dir" / "ckpt.pt"
    atomic_save({"x": torch.arange(3)}, target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["ckpt.pt"]
    assert torch.equal(torch.load(target, weights_only=True)["x"], torch.arange(3))
    atomic_save({"x": torch.arange(5)}, target)  # overwrite
    assert sorted(p.name for p in target.parent.iterdir()) == ["ckpt.pt"]
    assert torch.equal(torch.load(target, weights_only=True)["x"], torch.arange(5))


def test_atomic_save_honours_the_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_save({"x": 1}, tmp_path / "m.pt")
    finally:
        os.umask(umask)
    assert (tmp_path / "m.pt").stat().st_mode & 0o777 == 0o644


def test_atomic_save_failure_keeps_previous_file(tmp_path):
    target = tmp_path / "ckpt.pt"
    atomic_save({"x": torch.ones(2)}, target)
    before = target.read_bytes()
    with pytest.raises(Exception):  # a lambda cannot be pickled
        atomic_save({"x": torch.zeros(2), "bad": lambda: None}, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    assert torch.equal(torch.load(target, weights_only=True)["x"], torch.ones(2))


# ----------------------------------------------------------------------------- load_file


def test_load_file_round_trip_and_directory_lookup(tmp_path):
    model = Tiny()
    wf = weights_file("tiny", {"num_classes": 3}, model.state_dict(), iter=7)
    atomic_save(wf, tmp_path / "run" / "last_model.pt")
    got = load_file(tmp_path / "run" / "last_model.pt")
    assert got["format"] == "ppseg" and got["model"] == "tiny" and got["meta"] == {"iter": 7}
    assert got["model_kwargs"] == {"num_classes": 3}
    for k, v in model.state_dict().items():
        assert torch.equal(got["state_dict"][k], v)
    # a run directory resolves to its best model first, then the last model
    assert load_file(tmp_path / "run")["meta"] == {"iter": 7}
    atomic_save(weights_file("tiny", {}, model.state_dict(), iter=3), tmp_path / "run" / "best_model.pt")
    assert load_file(tmp_path / "run")["meta"] == {"iter": 3}
    (tmp_path / "empty").mkdir()
    with pytest.raises(PPSegError, match="empty"):
        load_file(tmp_path / "empty")


def test_load_file_errors_name_the_path(tmp_path):
    missing = tmp_path / "missing.pt"
    with pytest.raises(PPSegError) as e:
        load_file(missing)
    assert str(missing) in str(e.value) and "not found" in str(e.value)

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01 definitely not a checkpoint " * 10)
    with pytest.raises(PPSegError) as e:
        load_file(garbage)
    assert str(garbage) in str(e.value)

    plain = tmp_path / "plain_state_dict.pt"
    torch.save(Tiny().state_dict(), plain)
    with pytest.raises(PPSegError) as e:
        load_file(plain)
    assert str(plain) in str(e.value) and "not a ppseg checkpoint" in str(e.value)

    other_format = tmp_path / "other.pt"
    torch.save({"format": "mmseg", "state_dict": {}}, other_format)
    with pytest.raises(PPSegError, match="not a ppseg checkpoint"):
        load_file(other_format)

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(PPSegError) as e:
        load_file(empty)
    assert str(empty) in str(e.value)


# ----------------------------------------------------------------------------- load_weights


def test_load_weights_success_copies_values():
    src, dst = Tiny(), Tiny()
    with torch.no_grad():
        src.bn.running_var.fill_(3.0)
    ckpt = weights_file("tiny", {}, src.state_dict())
    del ckpt["state_dict"]["bn.num_batches_tracked"]  # optional key
    load_weights(dst, ckpt, "w.pt", "tiny")
    for k, v in src.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(dst.state_dict()[k], v)


def test_load_weights_mismatch_messages():
    ckpt5 = weights_file("tiny", {}, Tiny(num_classes=5).state_dict())
    with pytest.raises(PPSegError) as e:
        load_weights(Tiny(num_classes=3), ckpt5, "w5.pt", "tiny")
    msg = str(e.value)
    assert msg.startswith("w5.pt:") and "num_classes" in msg and "cls." in msg
    assert "[5" in msg and "[3" in msg

    with pytest.raises(PPSegError) as e:
        load_weights(Tiny(num_classes=3), ckpt5, "w5.pt", "other_model")
    assert "'tiny'" in str(e.value) and "'other_model'" in str(e.value)

    partial = weights_file("tiny", {}, {k: v for k, v in Tiny().state_dict().items() if not k.startswith("cls.")})
    with pytest.raises(PPSegError) as e:
        load_weights(Tiny(), partial, "p.pt", "tiny")
    assert "2 model key(s) missing" in str(e.value) and "cls." in str(e.value)

    extra = weights_file("tiny", {}, {**Tiny().state_dict(), "aux.weight": torch.zeros(1)})
    with pytest.raises(PPSegError) as e:
        load_weights(Tiny(), extra, "x.pt", "tiny")
    assert "unexpected" in str(e.value) and "aux.weight" in str(e.value)

    anonymous = {"state_dict": {}}
    with pytest.raises(PPSegError, match="another model"):
        load_weights(Tiny(), anonymous, "a.pt", "tiny")


# ----------------------------------------------------------------------------- pruning


def test_prune_checkpoints_keeps_newest_by_iteration_number(tmp_path):
    for k in (1, 2, 9, 10, 100, 20):
        (tmp_path / f"iter_{k}.pt").write_bytes(b"x")
    (tmp_path / "latest.pt").write_bytes(b"x")
    (tmp_path / "iter_best.pt").write_bytes(b"x")  # not a numbered snapshot: left alone
    prune_checkpoints(tmp_path, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["iter_10.pt", "iter_20.pt", "iter_100.pt", "latest.pt", "iter_best.pt"])
    prune_checkpoints(tmp_path, 1)
    assert sorted(p.name for p in tmp_path.glob("iter_*.pt")) == ["iter_100.pt", "iter_best.pt"]


def test_prune_checkpoints_keep_zero_keeps_all(tmp_path):
    for k in (9, 10, 11):
        (tmp_path / f"iter_{k}.pt").write_bytes(b"x")
    prune_checkpoints(tmp_path, 0)
    assert len(list(tmp_path.glob("iter_*.pt"))) == 3
    prune_checkpoints(tmp_path, 5)
    assert len(list(tmp_path.glob("iter_*.pt"))) == 3
    prune_checkpoints(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.glob("iter_*.pt")) == ["iter_10.pt", "iter_11.pt"]


def test_prune_checkpoints_in_empty_folder(tmp_path: Path):
    prune_checkpoints(tmp_path, 2)
    assert list(tmp_path.iterdir()) == []
