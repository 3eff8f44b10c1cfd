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
from typing import Any

from ..errors import PPSegError
from .clicks import Click
from .session import ClickPredictor, ClickSession, InteractiveSettings

__all__ = ["Click", "ClickPredictor", "ClickSession", "InteractiveSettings", "load_click_predictor",
           "DEFAULT_MODEL"]

#: the shipped click model used when no model is given
DEFAULT_MODEL = "zoo:click_mnv3_lite"


def load_click_predictor(spec: str | Path | None = None, *, threads: int | None = None,
                         device: str = "cpu") -> ClickPredictor:
    """A :class:`ClickPredictor` from a click model: a ppseg weights file or run folder (torch),
    an exported ``.onnx`` (ONNX Runtime, no torch), or ``zoo:NAME``; ``None`` is the shipped default.

    A model that is not a click model (a semantic segmentor, a matting model) is refused with a line
    naming the file and what it is for."""
    from ..zoo import get_entry, is_zoo_spec

    spec = DEFAULT_MODEL if spec is None else spec
    name = str(spec)
    if is_zoo_spec(name):
        path = get_entry(name, task="interactive").weights
    else:
        path = Path(spec)
        if not path.exists():
            raise PPSegError(f"{path}: click model not found (give a weights file, an exported .onnx, or zoo:NAME)")
    if path.suffix.lower() == ".onnx":
        from ..deploy.interactive import InteractivePredictor

        return InteractivePredictor(path, threads=threads)
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    from .predictor import load_torch_predictor

    return load_torch_predictor(path, device=device, name=name)
