"""Every registered model: builds by name, trains (list of logits), infers (one tensor), backpropagates."""

from __future__ import annotations

import pytest
import torch

import ppseg
from ppseg.errors import ConfigError


@pytest.mark.parametrize("name", ppseg.list_models(task="semantic"))
def test_registered_model_contract(name):
    torch.manual_seed(0)
    model = ppseg.create_model(name, num_classes=5)
    assert model.num_classes == 5
    x = torch.randn(2, 3, 67, 91)
    model.train()
    outs = model(x)
    assert isinstance(outs, list) and outs
    for o in outs:
        assert o.shape == (2, 5, 67, 91)
    sum(o.mean() for o in outs).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5, 67, 91)


def test_list_models_pattern():
    assert "lraspp_mobilenetv3_large" in ppseg.list_models("lraspp*")
    assert ppseg.list_models("no_such_*") == []


def test_create_model_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="did you mean 'num_classes'"):
        ppseg.create_model("lraspp_mobilenetv3_large", num_clases=3)
    with pytest.raises(ConfigError, match="expects int"):
        ppseg.create_model("lraspp_mobilenetv3_large", num_classes="three")
    with pytest.raises(ConfigError, match="unknown model 'lraspp_mobilenetv3_larg'; did you mean"):
        ppseg.create_model("lraspp_mobilenetv3_larg")


def test_importing_ppseg_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, ppseg, ppseg.errors; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("name", ppseg.list_models(task="interactive"))
def test_registered_click_model_contract(name):
    """Click models: ``forward(image, coord_features)`` -> dict of 1-channel logits at the input size,
    declaring what the first click-feature channel is (the interactive engine reads it)."""
    from ppseg.interactive.predictor import is_click_model, model_outputs

    torch.manual_seed(0)
    model = ppseg.create_model(name)
    assert is_click_model(model) and model.click_radius == 5
    x, c = torch.randn(2, 3, 67, 91), torch.rand(2, 3, 67, 91)
    model.train()
    outs = model_outputs(model(x, c))
    assert len(outs) >= 2 and all(o.shape == (2, 1, 67, 91) for o in outs)
    model.eval()
    with torch.no_grad():
        out = model(x, c)
    assert out["instances"].shape == (2, 1, 67, 91)


def test_list_models_by_task():
    assert set(ppseg.list_models(task="interactive")) == {"click_mobilenetv3_lite", "edgeflow_hrnet18_ocr64"}
    assert "pp_mobileseg_tiny" in ppseg.list_models(task="semantic")
    assert not set(ppseg.list_models(task="semantic")) & set(ppseg.list_models(task="interactive"))
