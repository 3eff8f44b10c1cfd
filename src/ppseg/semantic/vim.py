"""VIM (Valid Interpolate Module) and an exact, faster alternative to upsample + argmax.

PP-MobileSeg predicts logits at 1/8 (Base) or 1/16 (Tiny) of the input. The plain
post-processing resizes all ``C`` channels bilinearly to the input size and takes
the argmax there, which for ADE20K (150 classes, 512x512) means writing and reading
~39 M floats. Two cheaper label maps are offered here:

* :func:`vim` -- PaddleSeg's VIM (spec §2.7), reproduced exactly: only the classes
  that win somewhere at low resolution (one label set for the whole batch) are
  resized. It is *not* always equal to the argmax of the full upsample: a class
  that never wins at a low-resolution pixel can win between pixels.
* :func:`vim_exact` -- always equal to ``argmax(interpolate(logits, size))``
  (bilinear, ``align_corners=False``, first index on ties), bit for bit, computed
  by pruning classes per low-resolution cell; see its docstring for the proof.

:func:`agreement` measures how often two label maps agree.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["vim", "vim_exact", "agreement"]

# float32 unit roundoff u; e = _ERR * max|logit| = 32u * max|logit| is the safety margin of vim_exact's
# pruning and near-tie tests (its docstring derives the bounds 7uM, 5uM and 12uM that e/2 covers)
_U32 = 2.0 ** -24
_ERR = 32.0 * _U32
# vim_exact falls back to the full upsample when the candidate work (pixel x class pairs)
# exceeds this fraction of the full upsample's B*C*H*W outputs (measured break-even: 0.35-0.5)
_WORK_LIMIT = 0.3


def _check(lowres_logits: Tensor, size: tuple[int, int]) -> tuple[int, int]:
    if lowres_logits.dim() != 4:
        raise ValueError(f"lowres_logits must be [B, C, h, w], got shape {tuple(lowres_logits.shape)}")
    if not lowres_logits.is_floating_point():
        raise ValueError(f"lowres_logits must be floating point, got {lowres_logits.dtype}")
    if len(size) != 2 or int(size[0]) < 1 or int(size[1]) < 1:
        raise ValueError(f"size must be two positive integers (H, W), got {size}")
    return int(size[0]), int(size[1])


def _upsample(z: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(z, size=size, mode="bilinear", align_corners=False)


@torch.no_grad()
def vim(lowres_logits: Tensor, size: tuple[int, int]) -> Tensor:
    """PaddleSeg's Valid Interpolate Module: label map [B, H, W] (int64).

    1. label set = sorted unique argmax over channels of ``lowres_logits``, taken over
       all pixels of the **whole batch** (one shared set of K classes);
    2. gather those K channels (ascending class id) with ``index_select``;
    3. resize them bilinearly (``align_corners=False``) to ``size``;
    4. argmax over the K channels (first maximum, i.e. lowest class id on ties) and
       map the index back to its class id.

    Classes outside the label set can never be predicted, so the result differs
    from the argmax of the fully upsampled logits wherever such a class would win
    between low-resolution pixels (see :func:`vim_exact` for the exact answer).
    Paddle returns int32; this returns int64 like ``Tensor.argmax``.
    """
    H, W = _check(lowres_logits, size)
    labelset = torch.unique(lowres_logits.argmax(dim=1))  # sorted ascending
    picked = lowres_logits.index_select(1, labelset)
    return labelset[_upsample(picked, (H, W)).argmax(dim=1)]


def agreement(a: Tensor, b: Tensor) -> float:
    """Fraction of positions where two label maps of the same shape are equal."""
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.numel() == 0:
        return 1.0
    return float((a == b).sum().item()) / a.numel()


# ------------------------------------------------------------------------------------ vim_exact


@functools.lru_cache(maxsize=128)
def _axis_taps(n_in: int, n_out: int, axis: int) -> tuple[Tensor, ...] | None:
    """How torch's bilinear kernel blends source pixels along one axis, read from torch itself.

    Output ``o`` along this axis blends source ``i0[o]`` (weight ``w0[o]``) with
    ``i0[o] + 1`` (weight ``w1[o]``; ``w1 == 0`` where torch uses a single tap, e.g. at
    the clamped borders). The weights are measured by resizing one-hot images, so they
    are exactly the float32 lambdas of the installed torch: nothing about how it rounds
    source coordinates is assumed. The other axis is kept wider than 128 and unresized
    so that the probe runs through the same (generic) kernel as the calls it stands for.

    Returns, besides ``i0`` and the per-output weights, the cell layout: output indices
    with the same ``i0`` are contiguous (``i0`` is non-decreasing); ``start[r]`` / ``count[r]``
    give the run of cell ``r`` (``count`` may be 0), and ``tw0, tw1`` [n_in, R] (R = max
    count) the weights of the run's outputs, zero-padded, with ``valid`` [n_in, R].
    ``None`` if the probe shows anything other than <= 2 adjacent non-negative taps.
    """
    m = max(n_in, 129)
    eye = torch.zeros(n_in, m)
    eye[torch.arange(n_in), torch.arange(n_in)] = 1.0
    with torch.no_grad():
        if axis == 0:  # resize rows; columns m -> m unchanged
            probe = _upsample(eye.view(1, 1, n_in, m), (n_out, m))[0, 0, :, :n_in]  # [n_out, n_in]
        else:  # resize columns
            probe = _upsample(eye.t().contiguous().view(1, 1, m, n_in), (m, n_out))[0, 0, :n_in, :].t()
    nonzero = probe != 0
    count = nonzero.sum(1)
    if bool((count < 1).any()) or bool((count > 2).any()) or bool((probe < 0).any()):
        return None
    i0 = nonzero.to(torch.uint8).argmax(1)  # first non-zero tap
    two = count == 2
    nxt = torch.clamp(i0 + 1, max=n_in - 1)
    if bool((two & ((i0 + 1 >= n_in) | ~nonzero.gather(1, nxt[:, None])[:, 0])).any()):
        return None
    if n_out > 1 and bool((i0[1:] < i0[:-1]).any()):
        return None
    w0 = probe.gather(1, i0[:, None])[:, 0].contiguous()
    w1 = torch.where(two, probe.gather(1, nxt[:, None])[:, 0], torch.zeros(()))
    cnt = torch.bincount(i0, minlength=n_in)
    start = torch.cumsum(cnt, 0) - cnt
    R = int(cnt.max())
    local = torch.arange(R)
    valid = local[None, :] < cnt[:, None]  # [n_in, R]
    out_idx = torch.clamp(start[:, None] + local[None, :], max=n_out - 1)
    tw0 = torch.where(valid, w0[out_idx], torch.zeros(()))
    tw1 = torch.where(valid, w1[out_idx], torch.zeros(()))
    return i0, start, cnt, tw0, tw1, valid


def _torch_uses_generic_kernel(z: Tensor, size: tuple[int, int]) -> bool:
    """Whether torch's CPU bilinear kernel computes every output element of ``F.interpolate(z, size)``
    with the same arithmetic whatever the number and position of channels.

    torch's CPU kernel (as of 2.13) is a channels-last one, vectorised over channels (so
    a channel's rounding can depend on its position and on C), when the input is
    channels-last with C > 3, when H + W <= 128, or with one thread and C == 3;
    otherwise a generic per-element kernel. Only in the generic case can a few channels
    be resized alone and match the full resize bit for bit (the tests check this for
    the installed torch). Answering ``False`` is always safe: vim_exact then runs the
    full upsample.
    """
    H, W = size
    C = z.shape[1]
    if z.device.type != "cpu" or z.dtype != torch.float32 or not z.is_contiguous():
        return False
    if z.is_contiguous(memory_format=torch.channels_last) and C > 3:
        return False
    return H + W > 128 and C != 3


def vim_exact(lowres_logits: Tensor, size: tuple[int, int]) -> Tensor:
    """``argmax(F.interpolate(lowres_logits, size, mode="bilinear", align_corners=False), 1)``, faster.

    Returns int64 [B, H, W], equal element for element to the full upsample followed by
    ``argmax`` (first maximum on ties), but evaluates only the classes that can win.

    **Why it is exact.** Notation: ``u = 2^-24`` (float32 unit roundoff), ``M = max |z|``
    over the whole input, ``e = 32uM``.

    *Taps.* Along each axis torch blends two adjacent source indices ``i0, i0+1`` (one
    index at the clamped borders) with float32 weights ``l0 = fl(1 - l1) > 0``,
    ``l1 >= 0``, so ``l0 + l1 = 1 +- u``. :func:`_axis_taps` reads ``i0`` and the weights
    from torch itself, so the source-coordinate rounding of the installed torch is
    measured, not assumed. Every output pixel therefore belongs to a *cell* ``(r, c)``
    (its row and column ``i0``), and for class ``k`` its exact weighted sum
    ``S_k = sum_i w_i x_i`` uses only the corners ``{r, min(r+1,h-1)} x {c, min(c+1,w-1)}``
    with products of axis weights ``w_i >= 0``, ``sum w_i = (1 +- u)^2``. Hence
    ``min_k - 2.1uM <= S_k <= max_k + 2.1uM`` (``max_k`` / ``min_k``: max / min of
    ``z[k]`` over the cell's corners).

    *Rounding.* torch evaluates ``S_k`` in float32 with at most 5 roundings on any path
    (``(x00 l0 + x01 l1) m0 + (x10 l0 + x11 l1) m1``, or with pre-multiplied 2-D weights
    in its channels-last kernel; at a single-tap border the probe weight is
    ``fl(l0 + l1)``, one more rounding); with ``sum |w_i x_i| <= (1 + 3u) M`` its result
    ``t_k`` satisfies ``|t_k - S_k| <= 7uM``. The float32 values ``v_k`` computed here
    with the same weights (``(x00 l0 + x01 l1) m0 + (x10 l0 + x11 l1) m1``, 4 roundings)
    satisfy ``|v_k - S_k| <= 5uM``, so ``|v_k - t_k| <= 12uM < e/2``, and
    ``min_k - e/2 < t_k < max_k + e/2``.

    1. *Pruning.* Let ``L = max over classes of min_k``, attained by class ``d``. A class
       with ``max_k < L - e`` has ``t_k < max_k + e/2 < L - e/2 < t_d`` at *every* pixel
       of the cell: it is never the argmax there, not even on a tie, and is dropped.
       Classes within ``e`` of winning, exact ties included, are kept (``d`` always is).
    2. *Single survivor.* If only ``d`` survives, every pixel of the cell is ``d``.
    3. *Several survivors.* The survivors' ``v_k`` are computed at the cell's pixels. If
       the best ``v`` exceeds every other survivor's by more than ``e``, then
       ``t_best - t_k > v_best - v_k - e > 0``: the same strict winner, which is the label.
    4. *Near ties* (another survivor within ``e``, e.g. exact ties): torch's winner is
       among the survivors within ``e`` of the best ``v``. Those few classes are gathered
       (ascending id) and resized by torch itself. Its generic kernel computes each
       element independently of the other channels, so these values equal the full
       resize's bit for bit (asserted by the tests for the installed torch), and their
       first argmax is the full argmax: every class left out is strictly below.

    The full upsample is used instead (the same result by definition) when the logits
    are not contiguous float32 on the CPU or not finite, when torch would use its
    channel-vectorised kernel (output H + W <= 128, channels-last input, 3 channels;
    see :func:`_torch_uses_generic_kernel`), or when pruning leaves more than
    ``_WORK_LIMIT`` of the full work: e.g. for spatially white-noise logits most
    classes survive in most cells.
    """
    return _vim_exact(lowres_logits, size)[0]


@torch.no_grad()
def _vim_exact(z: Tensor, size: tuple[int, int], work_limit: float | None = _WORK_LIMIT) -> tuple[Tensor, dict]:
    """:func:`vim_exact` plus a dict of statistics (path taken, pixels resolved per step).

    ``work_limit=None`` never falls back for lack of pruning (the tests use it to
    exercise the pruning path on any input).
    """
    H, W = _check(z, size)
    B, C, h, w = z.shape
    dev = z.device

    def full(reason: str) -> tuple[Tensor, dict]:
        return _upsample(z, (H, W)).argmax(dim=1), {"path": "full", "reason": reason}

    if C == 1:
        return torch.zeros(B, H, W, dtype=torch.int64, device=dev), {"path": "single_class"}
    if not _torch_uses_generic_kernel(z, (H, W)):
        return full("torch would use its channel-vectorised kernel, or not contiguous float32 on the CPU")
    taps_h, taps_w = _axis_taps(h, H, 0), _axis_taps(w, W, 1)
    if taps_h is None or taps_w is None:
        return full("unexpected interpolation taps")
    absmax = float(z.abs().max())
    if not absmax < float("inf"):  # inf or nan
        return full("non-finite logits")
    e = _ERR * absmax
    ih0, rs, nr, th0, th1, rvalid = taps_h
    iw0, cs, nc, tw0, tw1, cvalid = taps_w
    R, Cw = th0.shape[1], tw0.shape[1]

    # ---- 1. per-cell bounds and pruning, at low resolution over all classes
    zp = F.pad(z, (0, 1, 0, 1), mode="replicate")  # cell (r, c) = rows r, r+1 and cols c, c+1 of zp
    rmax = torch.maximum(zp[:, :, :-1], zp[:, :, 1:])
    rmin = torch.minimum(zp[:, :, :-1], zp[:, :, 1:])
    cmax = torch.maximum(rmax[..., :-1], rmax[..., 1:])  # [B, C, h, w]
    cmin = torch.minimum(rmin[..., :-1], rmin[..., 1:])
    low, best = cmin.max(dim=1)  # [B, h, w]
    surv = cmax >= (low - e).unsqueeze(1)  # [B, C, h, w]
    nsurv = surv.sum(dim=1)  # [B, h, w]
    # cells no output pixel falls in (possible when downsampling) need no work
    used = (nr[:, None] > 0) & (nc[None, :] > 0)  # [h, w]
    amb_cell = (nsurv > 1) & used

    # ---- 2. single-survivor cells: the label of every pixel in the cell
    labels = best.index_select(1, ih0).index_select(2, iw0)  # [B, H, W]
    amb_idx = amb_cell.view(-1).nonzero()[:, 0]  # flat (b, r, c) ids of the ambiguous cells
    Na = amb_idx.numel()
    stats = {"path": "pruned", "cells": int(used.sum()) * B, "ambiguous_cells": Na,
             "ambiguous_pixels": 0, "pairs": 0, "near_tie_pixels": 0, "near_tie_classes": 0}
    if Na == 0:
        return labels, stats

    counts = nsurv.view(-1)[amb_idx]  # survivors per ambiguous cell
    # pad the candidate lists to powers of two (a few buckets; no loop over classes or pixels)
    kpad = torch.clamp(2 ** torch.ceil(torch.log2(counts.double())).long(), min=2)
    work = int((kpad * (R * Cw)).sum())
    stats["pairs"] = work
    if work_limit is not None and work > work_limit * B * C * H * W:
        return full(f"pruning left {work} pixel-class pairs")

    # survivors of each ambiguous cell in ascending class order, padded with -1
    kmax = int(counts.max())
    surv_a = surv.permute(0, 2, 3, 1).reshape(B * h * w, C)[amb_idx]  # [Na, C]
    rows_a, cls_a = surv_a.nonzero(as_tuple=True)
    slot = torch.cumsum(surv_a, dim=1)[rows_a, cls_a] - 1
    cand = torch.full((Na, kmax), -1, dtype=torch.int64, device=dev)
    cand[rows_a, slot] = cls_a
    cb = amb_idx // (h * w)
    cr = (amb_idx // w) % h
    cc = amb_idx % w
    zpf = zp.reshape(-1)
    hp, wp = h + 1, w + 1
    # the label map plus one scratch slot: padded block positions are written there
    flat_labels = torch.cat([labels.view(-1), labels.new_zeros(1)])
    scratch = B * H * W
    unsure_pos: list[Tensor] = []
    unsure_cls: list[Tensor] = []
    stats["ambiguous_pixels"] = int((nr[cr] * nc[cc]).sum())
    r_local = torch.arange(R, device=dev)[:, None]
    c_local = torch.arange(Cw, device=dev)
    for k in torch.unique(kpad).tolist():
        sel = (kpad == k).nonzero()[:, 0]
        k = min(k, kmax)
        cd = cand[sel, :k]  # [n, k]
        pad = cd < 0
        cd_safe = torch.where(pad, cd[:, :1], cd)
        b, r, c = cb[sel, None], cr[sel, None], cc[sel, None]
        base = ((b * C + cd_safe) * hp + r) * wp + c  # [n, k] index of corner (r, c) in zp
        x00, x01 = zpf[base], zpf[base + 1]
        x10, x11 = zpf[base + wp], zpf[base + wp + 1]
        a0, a1 = tw0[c], tw1[c]  # [n, 1, Cw]
        u0 = a0 * x00[..., None] + a1 * x01[..., None]  # [n, k, Cw]
        u1 = a0 * x10[..., None] + a1 * x11[..., None]
        m0, m1 = th0[r][..., None], th1[r][..., None]  # [n, 1, R, 1]
        v = m0 * u0[:, :, None, :] + m1 * u1[:, :, None, :]  # [n, k, R, Cw]
        v.masked_fill_(pad[..., None, None], float("-inf"))
        top = v.amax(dim=1, keepdim=True)
        # first maximum = lowest class id (candidates ascend; padding is -inf, never the top)
        cls_big = torch.where(pad, C, cd).to(torch.int32)[..., None, None]
        lab = torch.where(v == top, cls_big, C).amin(dim=1).to(torch.int64)  # [n, R, Cw]
        near = v >= top - e
        valid = rvalid[r[:, 0]][:, :, None] & cvalid[c[:, 0]][:, None, :]  # [n, R, Cw]
        pos = (b[..., None] * H + rs[r][..., None] + r_local) * W + cs[c][..., None] + c_local  # [n, R, Cw]
        pos = torch.where(valid, pos, scratch)
        flat_labels[pos] = lab
        unsure = near.sum(dim=1) > 1
        unsure &= valid
        if bool(unsure.any()):
            unsure_pos.append(pos[unsure])
            unsure_cls.append(cd[:, :, None, None].expand_as(near)[near & unsure[:, None]])
    labels = flat_labels[:scratch].view(B, H, W)

    # ---- 4. near ties: let torch resize the few classes involved and decide
    if unsure_pos:
        upos = torch.cat(unsure_pos)
        classes = torch.unique(torch.cat(unsure_cls))  # sorted
        stats["near_tie_pixels"] = int(upos.numel())
        stats["near_tie_classes"] = int(classes.numel())
        if classes.numel() == 3:  # torch treats exactly 3 channels like an image (vectorised kernel)
            classes = torch.cat([classes, classes[:1]])  # a trailing duplicate never wins a tie
        resized = _upsample(z.index_select(1, classes), (H, W))  # [B, T, H, W]
        ub, rest = upos // (H * W), upos % (H * W)
        vals = resized.view(B, classes.numel(), H * W).permute(0, 2, 1)[ub, rest]  # [U, T]
        flat_labels[upos] = classes[vals.argmax(dim=1)]
    return labels, stats
