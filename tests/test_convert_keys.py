"""paddle_to_torch_state: generic Paddle -> ppseg state-dict renaming, on a tiny model."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from ppseg.convert import ConvertedState, paddle_to_torch_state
from ppseg.errors import PPSegError


class Tiny(nn.Module):
    """Conv + BN + PReLU + Linear, plus a fixed scalar like PP-LiteSeg's ``_scale``."""

    def __init__(self, with_scale: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=True)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.PReLU()
        self.fc = nn.Linear(4, 2)
        if with_scale:
            self._scale = nn.Parameter(torch.ones(1), requires_grad=False)


def paddle_checkpoint() -> dict[str, object]:
    """What ``paddle.save(model.state_dict())`` of the Paddle twin of :class:`Tiny` holds."""
    rs = np.random.RandomState(0)
    return {
        "conv.weight": rs.randn(4, 3, 3, 3).astype(np.float32),
        "conv.bias": rs.randn(4).astype(np.float32),
        "bn.weight": rs.rand(4).astype(np.float32),
        "bn.bias": rs.randn(4).astype(np.float32),
        "bn._mean": rs.randn(4).astype(np.float32),
        "bn._variance": rs.rand(4).astype(np.float32) + 0.5,
        "act._weight": np.array([0.25], np.float32),
        "fc.weight": rs.randn(4, 2).astype(np.float32),  # Paddle Linear: [in, out]
        "fc.bias": rs.randn(2).astype(np.float32),
        "StructuredToParameterName@@": {"conv.weight": "conv2d_0.w_0"},
    }


def test_renames_transposes_and_loads_strictly() -> None:
    ckpt = paddle_checkpoint()
    model = Tiny()
    converted = paddle_to_torch_state(ckpt, model)
    assert isinstance(converted, ConvertedState)
    assert converted.renamed == [
        ("bn._mean", "bn.running_mean"),
        ("bn._variance", "bn.running_var"),
        ("act._weight", "act.weight"),
    ]
    assert converted.transposed == ["fc.weight"]
    assert converted.dropped == [] and converted.filled == []
    assert list(converted.state_dict) == list(model.state_dict())  # model order
    model.load_state_dict(converted.state_dict, strict=True)
    sd = model.state_dict()
    np.testing.assert_array_equal(sd["bn.running_var"].numpy(), ckpt["bn._variance"])
    np.testing.assert_array_equal(sd["act.weight"].numpy(), ckpt["act._weight"])
    np.testing.assert_array_equal(sd["fc.weight"].numpy(), ckpt["fc.weight"].T)
    assert sd["bn.num_batches_tracked"].item() == 0
    assert sd["bn.num_batches_tracked"].dtype == torch.long


def test_accepts_tensors_and_copies() -> None:
    ckpt = {k: torch.from_numpy(v) for k, v in paddle_checkpoint().items() if isinstance(v, np.ndarray)}
    converted = paddle_to_torch_state(ckpt, Tiny())
    assert converted.state_dict["conv.weight"].data_ptr() != ckpt["conv.weight"].data_ptr()
    assert torch.equal(converted.state_dict["conv.weight"], ckpt["conv.weight"])


def test_exact_name_wins_over_suffix_rename() -> None:
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.p = nn.Module()
            self.p._weight = nn.Parameter(torch.zeros(3))

    converted = paddle_to_torch_state({"p._weight": np.ones(3, np.float32)}, Odd())
    assert converted.renamed == [] and torch.equal(converted.state_dict["p._weight"], torch.ones(3))


def test_drop_patterns_are_reported() -> None:
    ckpt = paddle_checkpoint()
    ckpt["dead._depthwise_separable_0.weight"] = np.zeros((4, 1, 3, 3), np.float32)
    ckpt["dead._depthwise_separable_0.bias"] = np.zeros(4, np.float32)
    converted = paddle_to_torch_state(ckpt, Tiny(), drop=[r"_depthwise_separable_0\."])
    assert converted.dropped == ["dead._depthwise_separable_0.weight", "dead._depthwise_separable_0.bias"]


def test_defaults_fill_missing_model_keys() -> None:
    model = Tiny(with_scale=True)
    with pytest.raises(PPSegError, match=re.escape("model key '_scale' missing from the checkpoint")):
        paddle_to_torch_state(paddle_checkpoint(), model)
    for defaults in ({"_scale": 1.0}, {r"_sc\w+": 1.0}):
        converted = paddle_to_torch_state(paddle_checkpoint(), model, defaults=defaults)
        assert converted.filled == ["_scale"]
        assert torch.equal(converted.state_dict["_scale"], torch.ones(1))
    # A checkpoint value wins over a default.
    ckpt = {**paddle_checkpoint(), "_scale": np.array([3.0], np.float32)}
    converted = paddle_to_torch_state(ckpt, model, defaults={"_scale": 1.0})
    assert converted.filled == [] and converted.state_dict["_scale"].item() == 3.0
    # Defaults match whole keys only.
    with pytest.raises(PPSegError, match="'_scale' missing"):
        paddle_to_torch_state(paddle_checkpoint(), model, defaults={"_sca": 1.0})


def test_error_unknown_checkpoint_key() -> None:
    ckpt = {**paddle_checkpoint(), "head.extra.weight": np.zeros(2, np.float32)}
    with pytest.raises(PPSegError) as err:
        paddle_to_torch_state(ckpt, Tiny())
    assert str(err.value) == "checkpoint key 'head.extra.weight' has no counterpart in the model"


def test_error_missing_model_key() -> None:
    ckpt = paddle_checkpoint()
    del ckpt["bn._variance"]
    with pytest.raises(PPSegError) as err:
        paddle_to_torch_state(ckpt, Tiny())
    assert str(err.value) == "model key 'bn.running_var' missing from the checkpoint"


def test_error_shape_mismatch_names_the_key() -> None:
    ckpt = paddle_checkpoint()
    ckpt["conv.weight"] = np.zeros((4, 3, 5, 5), np.float32)
    with pytest.raises(PPSegError) as err:
        paddle_to_torch_state(ckpt, Tiny())
    assert str(err.value) == (
        "checkpoint key 'conv.weight': shape [4, 3, 5, 5] in the checkpoint, [4, 3, 3, 3] in the model"
    )
    ckpt = paddle_checkpoint()
    ckpt["bn._mean"] = np.zeros(5, np.float32)
    renamed_msg = "'bn._mean' (model 'bn.running_mean'): shape [5] in the checkpoint, [4]"
    with pytest.raises(PPSegError, match=re.escape(renamed_msg)):
        paddle_to_torch_state(ckpt, Tiny())


def test_error_two_keys_for_one_model_key() -> None:
    ckpt = {**paddle_checkpoint(), "act.weight": np.array([0.1], np.float32)}
    clash = "'act._weight' and 'act.weight' both map to model key 'act.weight'"
    with pytest.raises(PPSegError, match=re.escape(clash)):
        paddle_to_torch_state(ckpt, Tiny())
