"""Semantic connectivity-aware loss (SCL; Chu et al., "PP-HumanSeg", WACV-W 2022; spec §4.6).

The loss compares the *connected components* of the prediction with those of the label,
class by class, and rewards predictions whose components match the ground-truth
components one to one (no fragments, no stray blobs).

Two modes (an explicit choice, spec §4.6 / §11 item 11b). **The default differs from
PaddleSeg on purpose**: PaddleSeg's value is ``mode: reference`` (equal to it,
``tests/test_paddleseg_losses_metrics.py``):

* ``"differentiable"`` (default): the loss reaches the logits. The components are found
  on the argmax and the label as in the reference, but every IoU is computed with the
  softmax probability of the class inside the predicted component instead of the argmax
  value, so the gradient raises the probability where a predicted component overlaps its
  ground-truth component and lowers it in the part outside; a predicted component that
  touches no ground-truth component weighs in the denominator by its mean probability
  (pushed down once the class has at least one match; with none, ``loss_c`` is 1 whatever
  the denominator, as in the reference formula), and a class with no predicted component
  costs ``1 + sum(1 - p) / pixels`` over its ground-truth pixels (pushed up). With one-hot
  probabilities the value equals the reference formula evaluated with the true IoU for
  every class. Chosen as the default because a connectivity loss that cannot train is a
  trap; pick ``"reference"`` explicitly to reproduce PaddleSeg.
* ``"reference"``: PaddleSeg's ``SemanticConnectivityLoss`` value, bit for bit in its
  logic: the IoU is computed between the ground-truth component mask and the predicted
  component mask *multiplied by the argmax value*, i.e. by the class id (a true IoU only
  for class 1; always 0 for class 0; scaled for classes > 1). PaddleSeg re-wraps the
  argmax as a new tensor, so its loss carries **no gradient**: training with it only adds
  a constant to the logged loss. Here the value is returned graph-connected with an
  all-zero gradient (so it also works as the only loss), the closest PyTorch analogue of
  the reference's ``grad is None``. Use it to reproduce PaddleSeg runs and logs.

Per image, over the classes present in the label (``ignore_index`` skipped), with
connected components from OpenCV (8-connectivity by default) on CPU:

1. ``P_1..P_m``: components of ``argmax == c``; ``G_1..G_n``: components of ``label == c``.
   If ``m + 1 > 2 (n + 1)`` only components with id ``< max_pred_num_conn`` (OpenCV's
   numbering, background = 0) take part in the matching.
2. ``m > 0`` and ``n > 0``: ``pair_i`` = mean of the non-zero ``IoU(G_i, P_j)`` over ``j``
   (0 if none); ``lone`` = predicted components with zero IoU to every ``G_i``;
   ``loss_c = 1 - sum_i pair_i / (n + lone)``.
3. exactly one of ``m``, ``n`` is 0: ``loss_c = 1 + missed / pixels`` (``missed`` = label
   pixels of ``c`` not predicted as ``c``); both 0: ``loss_c = 0``.
4. image loss = mean of ``loss_c`` (0 with no class); batch loss = mean over images.

Ignored pixels: the reference finds the predicted components over the whole image and
divides ``missed`` by all pixels; the differentiable mode excludes ignored pixels from the
predicted components and divides by the number of valid pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from ppseg.errors import ConfigError

from ._common import check_ignore_index, is_int, no_autocast, prepare

__all__ = ["SCLMode", "SemanticConnectivityLoss"]

#: ``"differentiable"``: soft-IoU surrogate with a gradient; ``"reference"``: PaddleSeg's value, no gradient.
SCLMode = Literal["differentiable", "reference"]

_MODES: tuple[str, ...] = ("differentiable", "reference")


@dataclass
class _ClassComponents:
    """Connected components of one class in one image (pixel arrays flattened, ``[H * W]``).

    Attributes:
        image: Batch index.
        cls: Class id.
        pred_ids: Predicted component id per pixel; 0 = background or a component beyond
            the ``max_pred_num_conn`` limit.
        gt_ids: Ground-truth component id per pixel (0 = background).
        num_pred: Predicted components taking part in the matching (``m``).
        num_gt: Ground-truth components (``n``).
        missed: Label pixels of the class not predicted as the class.
    """

    image: int
    cls: int
    pred_ids: np.ndarray
    gt_ids: np.ndarray
    num_pred: int
    num_gt: int
    missed: int


class SemanticConnectivityLoss(nn.Module):
    """Semantic connectivity-aware loss (see the module docstring for the definition).

    Args:
        ignore_index: Label value excluded from the loss.
        max_pred_num_conn: When the prediction of a class has more than twice as many
            components as the label (background included), only predicted components with
            OpenCV id below this number are matched (bounds the cost early in training).
        mode: ``"differentiable"`` (default; trains the network) or ``"reference"``
            (PaddleSeg's value; zero gradient).
        connectivity: Pixel connectivity of the components: 8 (reference) or 4.
        use_argmax: PaddleSeg's switch: ``true`` (its default) takes the argmax of the logits,
            as here; ``false`` means the input is already a class map, which a ppseg loss never
            receives (losses get the model's logits), so only ``true`` is accepted.

    Shapes:
        ``logits [N, C, H, W]`` (resized to the label size if needed), ``label [N, H, W]``
        int -> scalar.

    Example:
        >>> scl = SemanticConnectivityLoss()
        >>> loss = ce(logits, label) + 0.05 * scl(logits, label)   # PaddleSeg's SCL configs
    """

    def __init__(
        self,
        ignore_index: int = 255,
        max_pred_num_conn: int = 10,
        mode: SCLMode = "differentiable",
        connectivity: Literal[4, 8] = 8,
        use_argmax: bool = True,
    ) -> None:
        super().__init__()
        self.ignore_index = check_ignore_index(ignore_index)
        if use_argmax is not True:
            raise ConfigError(
                f"use_argmax: {use_argmax!r}: PaddleSeg's use_argmax: false expects a class map instead "
                "of logits, but ppseg losses always receive the model's logits [N, C, H, W]; remove "
                "use_argmax (or write use_argmax: true): the loss takes their argmax"
            )
        if not is_int(max_pred_num_conn) or max_pred_num_conn < 1:
            raise ConfigError(f"max_pred_num_conn must be an int >= 1, got {max_pred_num_conn!r}")
        if mode not in _MODES:
            raise ConfigError(f"mode must be one of {list(_MODES)}, got {mode!r}")
        if isinstance(connectivity, bool) or connectivity not in (4, 8):
            raise ConfigError(f"connectivity must be 4 or 8, got {connectivity!r}")
        self.max_pred_num_conn = max_pred_num_conn
        self.mode: SCLMode = mode
        self.connectivity = int(connectivity)

    def extra_repr(self) -> str:
        """Show the options in ``repr``."""
        return (
            f"mode={self.mode!r}, ignore_index={self.ignore_index}, "
            f"max_pred_num_conn={self.max_pred_num_conn}, connectivity={self.connectivity}"
        )

    # ------------------------------------------------------------------ components

    def _components(self, image: int, cls: int, pred: np.ndarray, label: np.ndarray) -> _ClassComponents:
        """Components of class ``cls`` in one ``[H, W]`` prediction / label pair."""
        pred_mask = (pred == cls).astype(np.uint8)
        gt_mask = (label == cls).astype(np.uint8)
        num_pred, pred_ids = cv2.connectedComponents(pred_mask, connectivity=self.connectivity)
        num_gt, gt_ids = cv2.connectedComponents(gt_mask, connectivity=self.connectivity)
        if num_pred > 2 * num_gt and num_pred > self.max_pred_num_conn:
            num_pred = self.max_pred_num_conn
            pred_ids = np.where(pred_ids < num_pred, pred_ids, 0)
        missed = int(np.count_nonzero(gt_mask & (1 - pred_mask)))
        return _ClassComponents(
            image, cls, pred_ids.reshape(-1), gt_ids.reshape(-1), int(num_pred) - 1, int(num_gt) - 1, missed
        )

    # ------------------------------------------------------------------ forward

    def forward(self, logits: Tensor, label: Tensor) -> Tensor:
        """SCL of a batch: ``logits [N, C, H, W]``, ``label [N, H, W]`` -> scalar."""
        with no_autocast(logits.device):
            logits, label = prepare(logits, label)
            batch, _, height, width = logits.shape
            pred = logits.detach().argmax(dim=1).cpu().numpy()
            label_np = label.cpu().numpy()
            valid = label_np != self.ignore_index
            if self.mode == "differentiable":
                pred = np.where(valid, pred, -1)  # ignored pixels join no predicted component
            items = [
                self._components(b, int(c), pred[b], label_np[b])
                for b in range(batch)
                for c in np.unique(label_np[b][valid[b]])
            ]
            if self.mode == "reference":
                pixels = torch.full((batch,), float(height * width), dtype=torch.float64)
                class_losses = _class_losses(items, None, pixels, height * width)
                device_losses = class_losses.to(device=logits.device, dtype=torch.float32)
                anchor = logits.sum() * 0.0  # graph-connected, all-zero gradient
            else:
                probs = logits.softmax(dim=1)
                pixels = torch.as_tensor(valid.reshape(batch, -1).sum(1), dtype=torch.float32, device=logits.device)
                device_losses = _class_losses(items, probs, pixels, height * width)
                anchor = probs.sum() * 0.0  # keeps the graph when no class is present
            per_image = torch.zeros(batch, dtype=torch.float32, device=logits.device)
            class_count = torch.zeros(batch, dtype=torch.float32, device=logits.device)
            if items:
                images = torch.as_tensor([it.image for it in items], device=logits.device)
                per_image = per_image.index_add(0, images, device_losses.float())
                class_count = class_count.index_add(0, images, torch.ones_like(device_losses, dtype=torch.float32))
            per_image = per_image / class_count.clamp_min(1.0)
            return per_image.mean() + anchor


def _class_losses(items: list[_ClassComponents], probs: Tensor | None, pixels: Tensor, hw: int) -> Tensor:
    """``loss_c`` of every (image, class) item, ``[K]``.

    Args:
        items: Components per (image, class).
        probs: Softmax probabilities ``[N, C, H, W]`` (differentiable mode) or ``None``
            (reference mode: the per-pixel value is the class id, no gradient).
        pixels: Denominator of the missed-pixel term per image ``[N]`` (all pixels in the
            reference, valid pixels in the differentiable mode).
        hw: Pixels per image.
    """
    device = probs.device if probs is not None else torch.device("cpu")
    dtype = probs.dtype if probs is not None else torch.float64
    losses = torch.zeros(len(items), dtype=dtype, device=device)
    if not items:
        return losses
    matched_items = [k for k, it in enumerate(items) if it.num_pred > 0 and it.num_gt > 0]
    missed_items = [k for k, it in enumerate(items) if (it.num_pred > 0) != (it.num_gt > 0)]

    if matched_items:
        losses = losses.index_copy(
            0, torch.as_tensor(matched_items, device=device),
            _matching_losses([items[k] for k in matched_items], probs, hw, dtype, device),
        )
    if missed_items:
        missed_list = [items[k] for k in missed_items]
        images = torch.as_tensor([it.image for it in missed_list], device=device)
        if probs is None:
            missed = torch.as_tensor([float(it.missed) for it in missed_list], dtype=dtype)
        else:
            # soft missed pixels: sum of (1 - p_c) over the label pixels of the class
            num_classes = probs.shape[1]
            index = np.concatenate(
                [(it.image * num_classes + it.cls) * hw + np.flatnonzero(it.gt_ids) for it in missed_list]
            )
            owner = np.concatenate([np.full(np.count_nonzero(it.gt_ids), i) for i, it in enumerate(missed_list)])
            values = 1.0 - probs.reshape(-1)[torch.as_tensor(index, device=device)]
            missed = torch.zeros(len(missed_list), dtype=dtype, device=device).index_add(
                0, torch.as_tensor(owner, device=device), values
            )
        losses = losses.index_copy(
            0, torch.as_tensor(missed_items, device=device), 1.0 + missed / pixels.to(device, dtype)[images]
        )
    return losses


def _matching_losses(
    items: list[_ClassComponents], probs: Tensor | None, hw: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """``1 - connectivity`` of every item with components on both sides, ``[K]``.

    Vectorised over all items at once and sparse: only the (ground-truth, predicted)
    component pairs that share pixels can have a non-zero IoU, so the statistics are kept
    per overlapping pair, per component and per item (memory linear in the pixels, however
    many components there are). Components get batch-wide indices (``*_offset``); the
    per-pixel value summed over a component is the class id (reference) or the class
    probability (differentiable).
    """
    num_items = len(items)
    num_gt = np.array([it.num_gt for it in items])
    num_pred = np.array([it.num_pred for it in items])
    gt_offset = np.cumsum(num_gt) - num_gt
    pred_offset = np.cumsum(num_pred) - num_pred
    total_gt, total_pred = int(num_gt.sum()), int(num_pred.sum())
    item_of_gt = np.repeat(np.arange(num_items), num_gt)
    item_of_pred = np.repeat(np.arange(num_items), num_pred)

    # pixels inside a (used) predicted component: their component and their GT component (-1: none)
    pixel_index, pixel_pred, pixel_gt = [], [], []
    for k, it in enumerate(items):
        in_pred = np.flatnonzero(it.pred_ids)
        gt_ids = it.gt_ids[in_pred].astype(np.int64)
        pixel_pred.append(pred_offset[k] + it.pred_ids[in_pred].astype(np.int64) - 1)
        pixel_gt.append(np.where(gt_ids > 0, gt_offset[k] + gt_ids - 1, -1))
        if probs is not None:
            pixel_index.append((it.image * probs.shape[1] + it.cls) * hw + in_pred)
    pred_of_pixel, gt_of_pixel = np.concatenate(pixel_pred), np.concatenate(pixel_gt)
    overlap = gt_of_pixel >= 0
    pairs, pair_of_pixel, pair_count = np.unique(
        gt_of_pixel[overlap] * total_pred + pred_of_pixel[overlap], return_inverse=True, return_counts=True
    )
    pair_gt, pair_pred = pairs // total_pred, pairs % total_pred
    pred_area = np.bincount(pred_of_pixel, minlength=total_pred)
    gt_area = np.concatenate([np.bincount(it.gt_ids, minlength=it.num_gt + 1)[1:] for it in items])

    def as_tensor(array: np.ndarray, tensor_dtype: torch.dtype | None = None) -> Tensor:
        return torch.as_tensor(array, device=device, dtype=tensor_dtype)

    if probs is None:  # reference: the per-pixel value is the argmax value, i.e. the class id
        class_value = np.array([float(it.cls) for it in items])
        inter = as_tensor(pair_count * class_value[item_of_gt[pair_gt]], dtype)
        pred_sum = as_tensor(pred_area * class_value[item_of_pred], dtype)
        matched = class_value[item_of_gt[pair_gt]] != 0  # the reference's "iou != 0"
        lone_weight = torch.ones(total_pred, dtype=dtype, device=device)
    else:  # differentiable: the per-pixel value is the class probability
        values = probs.reshape(-1)[as_tensor(np.concatenate(pixel_index))]
        pred_sum = torch.zeros(total_pred, dtype=dtype, device=device).index_add(0, as_tensor(pred_of_pixel), values)
        inter = torch.zeros(len(pairs), dtype=dtype, device=device).index_add(
            0, as_tensor(pair_of_pixel.reshape(-1)), values[as_tensor(overlap)]
        )
        matched = np.ones(len(pairs), dtype=bool)
        lone_weight = pred_sum / as_tensor(pred_area, dtype)  # mean probability in the component

    union = pred_sum[as_tensor(pair_pred)] + as_tensor(gt_area[pair_gt], dtype) - inter
    iou = torch.where(as_tensor(matched), inter / union.clamp_min(1e-12), torch.zeros_like(inter))
    # pair_i: mean IoU over the components matched to GT component i (0 without a match)
    iou_per_gt = torch.zeros(total_gt, dtype=dtype, device=device).index_add(0, as_tensor(pair_gt), iou)
    matches_per_gt = np.bincount(pair_gt[matched], minlength=total_gt)
    pair_per_gt = iou_per_gt / as_tensor(np.maximum(matches_per_gt, 1), dtype)
    pair_sum = torch.zeros(num_items, dtype=dtype, device=device).index_add(0, as_tensor(item_of_gt), pair_per_gt)
    # lone predicted components (matched to no GT component) enlarge the denominator
    lone = as_tensor(np.bincount(pair_pred[matched], minlength=total_pred) == 0)
    lone_sum = torch.zeros(num_items, dtype=dtype, device=device).index_add(
        0, as_tensor(item_of_pred), lone_weight * lone.to(dtype)
    )
    return 1.0 - pair_sum / (as_tensor(num_gt, dtype) + lone_sum)
