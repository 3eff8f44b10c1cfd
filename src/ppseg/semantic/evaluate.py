"""Evaluation on a labelled dataset (``ppseg val`` and periodic evaluation in training).

Each image is predicted at its transformed size, the logits are mapped back to
the original size through the sample's recorded geometric ops (spec §9.2), and compared
with the original label. Confusion matrices are summed across processes.
"""

from __future__ import annotations

import torch

from ..data.datasets import SegDataset
from .metrics import SegMetrics
from .segmentor import Segmentor
from ..engine.loader import make_eval_loader, user_errors
from ..engine.options import autocast_for


@torch.no_grad()
def evaluate(segmentor: Segmentor, dataset: SegDataset, *, device: torch.device | str = "cpu",
             num_workers: int = 0, amp: str = "off", rank: int = 0, world_size: int = 1,
             progress: bool = False) -> SegMetrics:
    """Return the accumulated :class:`SegMetrics` of ``segmentor`` on ``dataset``."""
    from .task import collate

    device = torch.device(device)
    was_training = segmentor.training
    segmentor.eval()
    metrics = SegMetrics(dataset.num_classes)
    loader = make_eval_loader(dataset, num_workers, collate, rank, world_size)
    if progress:
        from tqdm import tqdm

        loader = tqdm(loader, desc="eval", unit="img", dynamic_ncols=True)
    for batch in user_errors(loader):
        images = batch["img"].to(device)
        label = batch["label"]
        with autocast_for(device, amp):
            pred = segmentor.predict_original(images, batch["ops"][0], tuple(label.shape[-2:]))
        metrics.update(pred.cpu(), label)
    metrics.all_reduce()
    segmentor.train(was_training)
    return metrics
