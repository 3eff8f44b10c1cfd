"""Click-based interactive segmentation: clicks, sessions, click models, the NoC benchmark.

* :mod:`~ppseg.interactive.clicks`, :mod:`~ppseg.interactive.zoom`, :mod:`~ppseg.interactive.session`:
  the predictor loop a tool drives (numpy only; shared by torch and ONNX Runtime);
* :mod:`~ppseg.interactive.predictor`: click models in torch; :mod:`ppseg.deploy.interactive`: in
  ONNX Runtime, without torch;
* :mod:`~ppseg.interactive.clicker`, :mod:`~ppseg.interactive.noc`, :mod:`~ppseg.interactive.datasets`,
  :mod:`~ppseg.interactive.grabcut`: RITM's click simulator and NoC protocol, benchmark datasets,
  OpenCV's GrabCut as the classic baseline (``ppseg click-eval``);
* :mod:`~ppseg.interactive.objects`, :mod:`~ppseg.interactive.data`, :mod:`~ppseg.interactive.task`:
  objects from segmentation datasets and training by click simulation (``task: interactive``).

    import ppseg.interactive as pi
    s = pi.load_click_predictor("zoo:click_mnv3_lite").session(image)
    s.click(120, 200); s.click(40, 35, positive=False); s.undo()
    mask = s.mask
"""

from __future__ import annotations

from pathlib import Path

from ..errors import PPSegError
from .clicks import Click
from .session import ClickPredictor, ClickSession, InteractiveSettings

__all__ = ["Click", "ClickPredictor", "ClickSession", "InteractiveSettings", "load_click_predictor",
           "DEFAULT_MODEL"]

#: the shipped click model used when no model is given
DEFAULT_MODEL = "zoo:click_mnv3_lite"


def load_click_predictor(spec: str | Path | None = None, *, threads: int | None = None,
                         device: str = "cpu", prefer_onnx: bool = False) -> ClickPredictor:
    """A :class:`ClickPredictor` from a click model: a ppseg weights file or run folder (torch),
    an exported ``.onnx`` (ONNX Runtime, no torch), or ``zoo:NAME``; ``None`` is the shipped default.

    A zoo model that ships its ONNX graph runs in ONNX Runtime when ``prefer_onnx`` or when torch
    is not installed (``pip install "ppseg[annotate]"``), else in torch.

    A model that is not a click model (a semantic segmentor, a matting model) is refused with a line
    naming the file and what it is for."""
    from ..zoo import get_entry, is_zoo_spec

    spec = DEFAULT_MODEL if spec is None else spec
    name = str(spec)
    if is_zoo_spec(name):
        entry = get_entry(name, task="interactive")
        path = entry.weights
        if entry.onnx is not None and (prefer_onnx or not _has_torch()):
            path = entry.onnx
    else:
        path = Path(spec)
        if not path.exists():
            raise PPSegError(f"{path}: click model not found (give a weights file, an exported .onnx, or zoo:NAME)")
    if path.suffix.lower() == ".onnx":
        from ..deploy.interactive import InteractivePredictor

        predictor = InteractivePredictor(path, threads=threads)
        predictor.name = name
        return predictor
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    from .predictor import load_torch_predictor

    return load_torch_predictor(path, device=device, name=name)


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None
