"""Halve an exported graph's size: float32 weights stored as float16, cast back at load.

``store_weights_fp16(path)`` rewrites ``path`` so that every float32 initializer of at least
``min_size`` elements is stored as float16 and followed by one ``Cast`` to float32. The graph still
computes in float32 (ONNX Runtime folds the casts once, when the session is created: no per-run
cost); only the weights are rounded to float16, as the zoo's ``.pt`` files are. Used for the ONNX
graphs shipped in the zoo (``scripts/pack_zoo_onnx.py``, through ``export_click_onnx(...,
weights_fp16=True)``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["store_weights_fp16"]


def store_weights_fp16(path: str | Path, min_size: int = 16) -> int:
    """Rewrite the ONNX file at ``path`` in place (see the module docstring); returns how many
    initializers were converted."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts, halves, kept = [], [], []
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype != np.float32 or arr.size < min_size:
            kept.append(init)
            continue
        half = numpy_helper.from_array(arr.astype(np.float16), f"{init.name}__fp16")
        halves.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}__to_float"))
    if not casts:
        return 0
    nodes = list(graph.node)
    del graph.initializer[:]
    graph.initializer.extend(kept + halves)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # the casts first: the node list stays topologically sorted
    tmp = Path(str(path) + ".fp16.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return len(casts)
