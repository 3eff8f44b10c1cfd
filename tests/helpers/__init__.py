"""Helpers shared by the test modules, importable as ``helpers.<module>``.

``pyproject.toml`` puts ``tests/`` on ``sys.path`` (``[tool.pytest.ini_options] pythonpath``),
so a test imports what it needs explicitly, e.g. ``from helpers.parity import load_fixture``;
``tests/conftest.py`` holds only fixtures.

* :mod:`helpers.data` - a tiny synthetic dataset, training configs, ``ppseg`` subprocess commands;
* :mod:`helpers.parity` - the reference fixtures of ``../shared/spec/parity`` (weight and input
  rules, tolerances, conversion and comparison);
* :mod:`helpers.weights` - non-trivial random weights for comparing two implementations;
* :mod:`helpers.onnx` - export a model to ONNX and compare onnxruntime with torch.
"""
