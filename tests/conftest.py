"""Shared fixtures. Helper functions live in the ``helpers`` package (``from helpers.data import ...``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.data import make_synthetic_dataset


@pytest.fixture
def synthetic_data(tmp_path: Path) -> Path:
    """A tiny 3-class dataset of coloured rectangles (8 train / 2 val images) under ``tmp_path / "data"``."""
    return make_synthetic_dataset(tmp_path / "data")


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (comparisons that must not depend on the thread count)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
