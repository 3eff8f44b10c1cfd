"""Fused cross-entropy + Lovász-Softmax on (optionally low-resolution) logits.

``MixedLoss([CrossEntropyLoss, LovaszSoftmaxLoss], coef)`` is the PP-MobileSeg recipe
loss. Computed the plain way on 150-class logits at 512x512 it is dominated by
full-resolution ``[N, C, H, W]`` tensors (~630 MB each at batch 4): the bilinear
upsample, ``log_softmax`` for CE and ``softmax`` for Lovász, their backwards, zero-filled
gradient buffers, class gathers and transposes, each a pass over (and often a freshly
page-faulted allocation of) such a tensor.

:func:`fused_ce_lovasz` returns both values and, in one backward, their exact combined
gradient, without ever materialising a full-resolution tensor: the resized logits are
produced a band of rows at a time (~2 MB, cache resident) and dropped.

* **Resize.** The low-resolution logits are shifted by their maximum over the classes
  (softmax is shift invariant; every resized value is then a convex combination of
  values <= 0, so ``exp2`` cannot overflow without a max pass at full resolution) and
  laid out rows-outermost. Per image, the width is resized by one GEMM with torch's own
  bilinear weights (read off by resizing an identity with ``F.interpolate``; scaled by
  ``log2(e)``), per band the height by one small GEMM. Values equal ``F.interpolate``'s
  up to float rounding. Bands where neighbours disagree so much that the shifted values
  would lose precision are redone with their own per-pixel maximum.
* **Forward, per band:** gather the label's value, ``exp2`` in place, sum over classes
  (CE = ``ln2 * (log2(sum) - z_label)``), and keep the softmax of the K classes present
  in the batch (``[N, H, K, W]`` scratch, for Lovász).
* **Lovász** (:class:`LovaszSoftmaxLoss` semantics, ``classes="present"``): only pixels
  that can carry a non-zero Lovász weight are ordered (every foreground pixel, and the
  background pixels whose error reaches the class's smallest foreground error, see
  :func:`ppseg.losses.lovasz.lovasz_weights`), by one stable int64 sort on
  ``(class, error descending)``; the weights are computed with exactly the float32
  operations of :func:`ppseg.losses._common.lovasz_grad`, so they are the same bits as
  the plain loss's whenever the order is the same (it can differ only among equal
  errors, where the Lovász extension has a kink and any order is a valid subgradient).
* **Backward, per band:** recompute the band, ``exp2`` in place, multiply by the
  per-pixel ``(a*w - g*S) / sum`` and add ``g*p_y*g_y - a*w`` on the label channel and
  ``g*p_k*g_k`` on the background candidates (``a``, ``g``: the upstream CE and Lovász
  gradients; ``w``: pixel weight; ``S = sum_k p_k g_k``), then apply the transposed
  resize GEMMs into the low-resolution gradient.
* **Threads.** The band work is split over ``torch.get_num_threads()`` persistent Python
  threads, each with one intra-op thread (thousands of small OpenMP fork/joins per step
  are slow as soon as the cores are shared), and the whole-batch operations run on one
  intra-op thread; per-thread scratch buffers are reused across calls.

Everything is float32 with autocast off. ``MixedLoss`` uses this path automatically when
its sub-losses are exactly a plain :class:`CrossEntropyLoss` (class weights and
``avg_non_ignore`` supported, no ``top_k_percent_pixels``) and a
:class:`LovaszSoftmaxLoss` with ``classes="present"`` and the same ``ignore_index``, on
CPU; such a loss declares :meth:`~ppseg.losses.mixed.MixedLoss.accepts_lowres_logits`, and the
trainer then hands it the low-resolution logits of a model that declares ``trains_from_lowres``
(PP-MobileSeg; :meth:`ppseg.semantic.task.SemanticTask.prepare`). Values and gradients equal the plain
losses' up to float rounding (``tests/test_losses_fused.py``). ``PPSEG_FUSED_LOSS=0``
(or :data:`ENABLED` ``= False``) forces the plain path; ``PPSEG_FUSED_SPLIT=0`` uses
intra-op threads instead of the Python-thread split.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.profiler import record_function

from ._common import EPS_CE, no_autocast

ENABLED: bool = os.environ.get("PPSEG_FUSED_LOSS", "1").strip().lower() not in ("0", "false", "off", "no")
"""Global switch of the fused path (``PPSEG_FUSED_LOSS=0`` turns it off)."""

DEVICE_TYPES: tuple[str, ...] = ("cpu",)
"""Devices the fused path is used on (it is tuned for, and only measured on, CPUs)."""

BAND_BYTES: int = int(os.environ.get("PPSEG_FUSED_BAND_BYTES", 1 << 21))
"""Target size of one band of resized logits (float32 ``rows x C x W``)."""

_MIN_SUM = 2.0**-40  # below: redo the band with its own max (keeps exp2 values far from underflow)
_INF_BITS = 0x7F800000  # bit pattern of +inf: 0x7F800000 - bits(e) orders errors e >= 0 descending


# ----------------------------------------------------------------------------- applicability


def fusable_pair(losses: list[nn.Module]) -> tuple[int, int] | None:
    """Indices ``(i_ce, i_lovasz)`` of a fusable CE + Lovász-Softmax pair in ``losses``.

    Fusable: exactly a :class:`~ppseg.losses.CrossEntropyLoss` without
    ``top_k_percent_pixels`` and exactly a :class:`~ppseg.losses.LovaszSoftmaxLoss` with
    ``classes="present"``, both with the same ``ignore_index`` (subclasses are not
    fused: they may compute something else).
    """
    from .cross_entropy import CrossEntropyLoss
    from .lovasz import LovaszSoftmaxLoss

    if not ENABLED:
        return None
    ces = [i for i, m in enumerate(losses)
           if type(m) is CrossEntropyLoss and m.top_k_percent_pixels >= 1.0]
    lovs = [i for i, m in enumerate(losses) if type(m) is LovaszSoftmaxLoss and m.classes == "present"]
    if len(ces) != 1 or len(lovs) != 1:
        return None
    i_ce, i_lov = ces[0], lovs[0]
    if losses[i_ce].ignore_index != losses[i_lov].ignore_index:  # type: ignore[union-attr]
        return None
    return i_ce, i_lov


def applies_to(logits: Tensor, label: Tensor, ce: nn.Module, ignore_index: int) -> bool:
    """Run-time conditions: supported device, shapes, class weights and a valid pixel."""
    if logits.device.type not in DEVICE_TYPES or logits.dim() != 4 or logits.shape[1] < 2:
        return False
    if not logits.is_floating_point():
        return False
    if label.dim() == 4 and label.shape[1] == 1:
        label = label[:, 0]
    if label.dim() != 3 or label.shape[0] != logits.shape[0]:
        return False
    weight = getattr(ce, "class_weight", None)
    if weight is not None and weight.numel() != logits.shape[1]:
        return False  # the plain loss raises its own error message
    return bool((label != ignore_index).any())


# ----------------------------------------------------------------------------- resize helpers

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453


@functools.lru_cache(maxsize=32)
def _resize_matrix(n_in: int, n_out: int) -> Tensor:
    """``R [n_out, n_in]``: torch's 1-D bilinear weights (``align_corners=False``).

    Read off by resizing an identity with ``F.interpolate``, so they are exactly the
    weights ``F.interpolate`` uses.
    """
    eye = torch.eye(n_in, dtype=torch.float32).view(1, n_in, n_in, 1)
    return F.interpolate(eye, size=(n_out, 1), mode="bilinear", align_corners=False)[0, :, :, 0].t().contiguous()


@functools.lru_cache(maxsize=32)
def _height_bands(h: int, H: int, rows: int) -> tuple[tuple[int, int, int, int, Tensor, Tensor], ...]:
    """Bands ``(r0, r1, y_lo, y_hi, A, A^T)`` of the ``h -> H`` height resize, ``A = R[r0:r1, y_lo:y_hi]``."""
    R = _resize_matrix(h, H)
    out = []
    for r0 in range(0, H, rows):
        r1 = min(H, r0 + rows)
        cols = R[r0:r1].abs().sum(0).nonzero().squeeze(1)
        y_lo, y_hi = int(cols.min()), int(cols.max()) + 1
        A = R[r0:r1, y_lo:y_hi].contiguous()
        out.append((r0, r1, y_lo, y_hi, A, A.t().contiguous()))
    return tuple(out)


@functools.lru_cache(maxsize=32)
def _scaled_width_matrix(w: int, W: int) -> Tensor:
    """``R_w^T * log2(e)`` ``[w, W]``: the width resize, producing logits in log2 units."""
    return (_resize_matrix(w, W).t() * LOG2E).contiguous()


def _rows_per_band(C: int, W: int) -> int:
    return max(1, min(64, BAND_BYTES // max(1, 4 * C * W)))


class _Workspace(threading.local):
    """Per-thread scratch buffers reused across calls (no fresh page-faulted allocations).

    Only for tensors that are dead when the forward (or backward) returns: nothing
    taken from here is saved for backward or returned.
    """

    def __init__(self) -> None:
        self.bufs: dict[tuple[str, torch.device, torch.dtype], Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], device: torch.device,
            dtype: torch.dtype = torch.float32) -> Tensor:
        numel = 1
        for d in shape:
            numel *= d
        key = (name, device, dtype)
        buf = self.bufs.get(key)
        if buf is None or buf.numel() < numel:
            buf = torch.empty(numel, dtype=dtype, device=device)
            self.bufs[key] = buf
        return buf[:numel].view(shape)

    def clear(self) -> None:
        self.bufs.clear()


_WS = _Workspace()


class _Split:
    """Run band work in several Python threads, each with one intra-op thread.

    The band operations are small (a few MB each), so intra-op parallelism pays a fork/join
    per operation, thousands per step, which is slow as soon as the cores are shared with
    anything else. Instead the (image, band) items are cut into one contiguous run per
    thread and every thread runs its run with one intra-op thread (the kernels release the
    GIL). The threads are persistent, so their scratch buffers (:data:`_WS`) are reused.
    """

    def __init__(self) -> None:
        self.pool: Any = None
        self.size = 0
        self.pid = -1
        self.lock = threading.Lock()

    def run(self, work: Any, n_items: int, n_threads: int) -> None:
        """Call ``work(lo, hi)`` on a partition of ``range(n_items)`` in ``n_threads`` threads."""
        n_threads = min(n_threads, n_items) if SPLIT else 1
        if n_threads <= 1:
            work(0, n_items)
            return
        from concurrent.futures import ThreadPoolExecutor

        def one(lo: int, hi: int) -> None:
            torch.set_num_threads(1)  # this thread's intra-op threads (and MKL's)
            with torch.no_grad():  # grad mode is per thread
                work(lo, hi)

        with self.lock:
            if self.pool is None or self.pid != os.getpid() or self.size < n_threads:
                self.pool = ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="ppseg-fused")
                self.size, self.pid = n_threads, os.getpid()
            prev = torch.get_num_threads()
            cuts = [n_items * t // n_threads for t in range(n_threads + 1)]
            try:
                futures = [self.pool.submit(one, cuts[t], cuts[t + 1]) for t in range(n_threads)]
                for f in futures:
                    f.exception()  # wait for all of them before raising anything
            finally:
                torch.set_num_threads(prev)  # also the default of threads started later
            for f in futures:
                f.result()


@contextlib.contextmanager
def _single_intra_op_thread() -> Iterator[int]:
    """Run the calling thread's ops on one intra-op thread; yields the previous thread count.

    The fused loss's whole-batch operations are a few dozen passes over per-pixel vectors:
    an OpenMP fork/join each costs little on idle cores but a scheduler time slice each when
    the cores are shared, while the parallel part (the bands) is split over Python threads.
    """
    prev = torch.get_num_threads()
    if not SPLIT or prev == 1:
        yield prev
        return
    torch.set_num_threads(1)
    try:
        yield prev
    finally:
        torch.set_num_threads(prev)


SPLIT: bool = os.environ.get("PPSEG_FUSED_SPLIT", "1").strip().lower() not in ("0", "false", "off", "no")
"""Split the band work over Python threads (``PPSEG_FUSED_SPLIT=0``: intra-op threads instead)."""

_SPLIT = _Split()


class _Resized:
    """The resized logits of one image, in log2 units, a band of rows at a time.

    ``full`` (logits already at the label size): a band is a transposed copy of the
    logits. Otherwise the width is resized into a per-image row-major buffer
    ``[h, C * W]`` (one GEMM with torch's bilinear weights, times log2(e)) and a band
    of output rows is one GEMM of that buffer with the height-resize weights; the
    backward applies the transposed GEMMs.
    """

    def __init__(self, L: Tensor, H: int, W: int) -> None:
        N, C, h, w = L.shape
        self.L, self.N, self.C, self.h, self.w, self.H, self.W = L, N, C, h, w, H, W
        self.full = (h, w) == (H, W)
        self.rows = _rows_per_band(C, W)
        if self.full or h == H:
            self.bands = tuple((r0, min(H, r0 + self.rows), r0, min(H, r0 + self.rows), None, None)
                               for r0 in range(0, H, self.rows))
        else:
            self.bands = _height_bands(h, H, self.rows)
        if not self.full:
            # Shifted by the per-position maximum over the classes (softmax is shift invariant):
            # every resized value is a convex combination of values <= 0, so it is <= 0 and the
            # exp2 cannot overflow without a per-pixel max pass over the resized logits.
            shift = L.amax(1, keepdim=True)
            self.Lp = (L - shift).permute(0, 2, 1, 3).contiguous()  # [N, h, C, w]: rows outermost
        # (n, band) items whose pixels need their own max subtraction (all of them when ``full``;
        # otherwise only where the shifted values underflow, see _FusedCELovasz.forward)
        self.exact: set[int] = set()

    def band_buffer(self, name: str, b: int) -> Tensor:
        return _WS.get(f"{name}{b}", (b, self.C, self.W), self.L.device)

    def image(self, n: int) -> Tensor:
        """Per-image source of :meth:`load`: the logits, or the width-resized rows (scratch)."""
        if self.full:
            return self.L[n]
        h, C, w, W = self.h, self.C, self.w, self.W
        src = _WS.get("src", (h, C * W), self.L.device)
        if w == W:
            torch.mul(self.Lp[n].view(h, C * W), LOG2E, out=src)
        else:
            torch.mm(self.Lp[n].view(h * C, w), _scaled_width_matrix(w, W).to(src.device), out=src.view(h * C, W))
        return src

    def load(self, src: Tensor, band: tuple, out: Tensor) -> Tensor:
        """The band's logits times log2(e), ``[rows, C, W]``, written into ``out``."""
        r0, r1, y_lo, y_hi, A, _ = band
        if self.full:
            torch.mul(src[:, r0:r1, :].transpose(0, 1), LOG2E, out=out)
        elif A is None:  # no height resize
            out.view(r1 - r0, -1).copy_(src[y_lo:y_hi])
        else:
            torch.mm(A, src[y_lo:y_hi], out=out.view(r1 - r0, -1))
        return out

    def new_grad(self, zero: bool) -> Tensor:
        shape = (self.N, self.C, self.H, self.W) if self.full else (self.N, self.h, self.C, self.w)
        make = torch.zeros if zero else torch.empty
        return make(shape, dtype=torch.float32, device=self.L.device)

    def image_grad(self) -> Tensor:
        """Zeroed per-image accumulator for :meth:`store_grad` (scratch, resize case)."""
        if self.full:
            return torch.empty(0)
        return _WS.get("dsrc", (self.h, self.C * self.W), self.L.device).zero_()

    def store_grad(self, dL: Tensor, dsrc: Tensor, n: int, band: tuple, grad: Tensor) -> None:
        """Adjoint of :meth:`load` (without the log2(e) factor)."""
        r0, r1, y_lo, y_hi, _, AT = band
        if self.full:
            dL[n, :, r0:r1, :].transpose(0, 1).copy_(grad)
        elif AT is None:
            dsrc[y_lo:y_hi].add_(grad.view(r1 - r0, -1))
        else:
            dsrc[y_lo:y_hi].addmm_(AT, grad.view(r1 - r0, -1))

    def finish_image_grad(self, dL: Tensor, dsrc: Tensor, n: int) -> None:
        """Width-resize adjoint of the accumulated per-image gradient into ``dL[n]``."""
        if self.full:
            return
        h, C, w, W = self.h, self.C, self.w, self.W
        if w == W:
            dL[n].view(h, C * W).copy_(dsrc)
        else:
            torch.mm(dsrc.view(h * C, W), _resize_matrix(w, W).to(dsrc.device), out=dL[n].view(h * C, w))

    def grad_to_logits(self, dL: Tensor) -> Tensor:
        return dL if self.full else dL.permute(0, 2, 1, 3)


def _error_key(k: Tensor, err: Tensor) -> Tensor:
    """int64 sort key: class ascending, then error (finite, >= 0) descending."""
    return (k << 32) | (_INF_BITS - err.view(torch.int32)).long()


# ----------------------------------------------------------------------------- the function


class _FusedCELovasz(torch.autograd.Function):
    """``(logits [N, C, h, w], label [N, H, W]) -> (ce, lovasz)``, resized to ``H x W`` inside."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        L: Tensor,
        label: Tensor,
        class_weight: Tensor | None,
        ignore_index: int,
        avg_non_ignore: bool,
    ) -> tuple[Tensor, Tensor]:
        with _single_intra_op_thread() as n_threads:
            return _FusedCELovasz._forward(ctx, L, label, class_weight, ignore_index, avg_non_ignore, n_threads)

    @staticmethod
    def backward(ctx: Any, g_ce: Tensor, g_lov: Tensor):  # type: ignore[override]
        with _single_intra_op_thread() as n_threads:
            return _FusedCELovasz._backward(ctx, g_ce, g_lov, n_threads)

    @staticmethod
    def _forward(ctx: Any, L: Tensor, label: Tensor, class_weight: Tensor | None, ignore_index: int,
                 avg_non_ignore: bool, n_threads: int) -> tuple[Tensor, Tensor]:
        N, C = L.shape[:2]
        H, W = label.shape[-2:]
        dev = L.device
        rz = _Resized(L, H, W)
        rows = rz.rows

        valid = label != ignore_index
        safe = torch.where(valid, label, torch.zeros((), dtype=label.dtype, device=dev))
        wpix = valid.float()
        if class_weight is not None:
            wpix = class_weight[safe] * wpix
        counts = torch.bincount(safe.view(-1), minlength=C)
        if counts.numel() > C:
            raise ValueError(f"label values must be < the number of classes ({C}) or ignore_index")
        n_valid = int(valid.sum())
        counts[0] -= valid.numel() - n_valid  # ignored pixels were counted as class 0
        classes = counts.nonzero().squeeze(1)  # sorted, like torch.unique in LovaszSoftmaxLoss
        K = classes.numel()
        kmap = torch.zeros(C, dtype=torch.long, device=dev)
        kmap[classes] = torch.arange(K, device=dev)
        kpix = kmap[safe]  # present-class index of each pixel's label (0 where ignored)

        # ---- one pass over the resized logits, a band of rows at a time (log2 units)
        with record_function("fused_ce_lovasz.forward_bands"):
            # per pixel, in log2 units: the shift beyond the low-resolution one (0 but in exact bands),
            # the sum over classes of exp2(z - shift), and z[label] - shift
            mx = (torch.empty if rz.full else torch.zeros)(N, H, W, dtype=torch.float32, device=dev)
            sm = torch.empty(N, H, W, dtype=torch.float32, device=dev)
            zl = torch.empty(N, H, W, dtype=torch.float32, device=dev)
            p_fg = torch.empty(N, H, W, dtype=torch.float32, device=dev)  # softmax of the label class
            pbuf = _WS.get("pbuf", (N, H, K, W), dev)  # softmax of the present classes
            bands = rz.bands
            n_bands = len(bands)
            band_max = torch.empty(N * n_bands, K, dtype=torch.float32, device=dev)

            def work(items: range) -> None:
                sel: dict[int, Tensor] = {}
                src, src_n = None, -1
                for i in items:
                    n, band = divmod(i, n_bands)
                    r0, r1 = bands[band][0], bands[band][1]
                    b = r1 - r0
                    if n != src_n:
                        src, src_n = rz.image(n), n
                    z = rz.load(src, bands[band], rz.band_buffer("z", b))
                    if b not in sel:
                        sel[b] = (torch.arange(b, device=dev).unsqueeze(1) * C + classes).view(-1)
                    if rz.full or i in rz.exact:
                        m = mx[n, r0:r1].unsqueeze(1)
                        torch.amax(z, 1, keepdim=True, out=m)
                        z.sub_(m)
                    torch.gather(z, 1, safe[n, r0:r1].unsqueeze(1), out=zl[n, r0:r1].unsqueeze(1))
                    e = z.exp2_()
                    s = sm[n, r0:r1]
                    torch.sum(e, 1, out=s)
                    pb = pbuf[n, r0:r1]
                    torch.index_select(e.view(b * C, W), 0, sel[b], out=pb.view(b * K, W))
                    pb.div_(s.unsqueeze(1))
                    torch.gather(pb, 1, kpix[n, r0:r1].unsqueeze(1), out=p_fg[n, r0:r1].unsqueeze(1))
                    torch.amax(pb, (0, 2), out=band_max[i])

            _SPLIT.run(lambda lo, hi: work(range(lo, hi)), N * n_bands, n_threads)
            if not rz.full:
                # The shift is the maximum over the classes of the low-resolution logits around a
                # pixel, not of the pixel's own: where neighbours disagree by a lot the resized
                # values are all far below 0 and their exp2 would lose precision (or underflow);
                # those bands are redone with their own per-pixel maximum (rare).
                low = (sm < _MIN_SUM).view(N, H, W)
                if bool(low.any()):
                    rows_low = low.any(2).nonzero().tolist()
                    redo = sorted({n * n_bands + r // rows for n, r in rows_low})
                    rz.exact.update(redo)
                    work(redo)

        with record_function("fused_ce_lovasz.forward_lovasz"):
            # ---- cross-entropy (CrossEntropyLoss, spec §7): ce = ln2 * (log2(sum) - z_label), shifted
            ce_pix = (sm.log2() - zl).mul_(LN2)
            # CrossEntropyLoss's denominator: the mean coefficient (the weight of the counted pixels;
            # with avg_non_ignore=False an ignored pixel counts with weight 1)
            ce_sum = (ce_pix * wpix).mean()
            wmean = wpix.mean() if avg_non_ignore else torch.where(valid, wpix, 1.0).mean()
            ce = ce_sum / (wmean + EPS_CE)

            # ---- Lovász-Softmax, "present" classes (LovaszSoftmaxLoss semantics).
            # Candidates: every valid pixel for its own class (error 1 - p), and background
            # pixels (error |0 - p| = p) whose error reaches the class's smallest foreground
            # error; the others have Lovász weight exactly 0. The foreground candidates are
            # the pixels themselves, in pixel order (ignored ones get a key past every class).
            Npix = N * H * W
            err_fg = (1.0 - p_fg).abs_().view(-1)
            kflat = kpix.view(-1)
            vflat = valid.view(-1)
            smallest_fg = torch.full((K,), float("inf"), device=dev).scatter_reduce_(
                0, kflat, torch.where(vflat, err_fg, float("inf")), reduce="amin", include_self=True)
            key_fg = torch.where(vflat, _error_key(kflat, err_fg), K << 32)
            bg = None
            if bool((band_max.amax(0) >= smallest_fg).any()):
                mask = pbuf >= smallest_fg.view(1, 1, K, 1)
                mask &= valid.view(N, H, 1, W)
                mask.scatter_(2, kpix.view(N, H, 1, W), False)  # the foreground ones are above
                idx = mask.view(N * H, K, W).nonzero()  # (pixel row, class, x), in pixel order
                del mask
                if idx.shape[0] > 0:
                    row_b, k_b, x_b = idx.unbind(1)
                    p_b = pbuf.view(-1).index_select(0, (row_b * K + k_b) * W + x_b)
                    bg = (row_b, k_b, x_b, p_b)
            if bg is None:
                key = key_fg
            else:
                key = torch.cat([key_fg, _error_key(bg[1], bg[3])])
            n_cand = n_valid + (0 if bg is None else bg[3].numel())
            # one stable sort: class ascending, error descending, ties in pixel order
            perm = torch.sort(key, stable=True).indices[:n_cand]
            del key
            seg_len = counts.index_select(0, classes)  # foreground pixels of each class
            total = seg_len
            if bg is not None:
                seg_len = seg_len + torch.bincount(bg[1], minlength=K)
            seg_start = seg_len.cumsum(0) - seg_len
            # position in the class's sorted run (1-based), and the foreground pixels up to it
            pos = torch.arange(1, n_cand + 1, device=dev) - torch.repeat_interleave(seg_start, seg_len)
            totalf = torch.repeat_interleave(total, seg_len).float()
            # exactly the float32 operations of lovasz_grad on each class's sorted pixels:
            # jaccard = 1 - (total - cum_fg) / (total + cum_bg)
            if bg is None:  # only foreground: cum_fg = pos, cum_bg = 0
                inter = totalf - pos.float()
                union = totalf
            else:
                fg_before = total.cumsum(0) - total  # all of class k's foreground is in segment k
                cum_fg = (perm < Npix).cumsum(0) - torch.repeat_interleave(fg_before, seg_len)
                inter = totalf - cum_fg.float()
                union = totalf.add_((pos - cum_fg).float())
            jac = inter.div_(union).neg_().add_(1.0)
            w_s = jac.clone()
            w_s[1:] -= jac[:-1]
            w_s[seg_start] = jac[seg_start]
            e_all = err_fg if bg is None else torch.cat([err_fg, bg[3]])
            e_s = e_all.index_select(0, perm)
            ew = (e_s * w_s).double().cumsum(0)
            seg_end = ew.index_select(0, seg_start + seg_len - 1)
            per_class = seg_end - torch.cat([seg_end.new_zeros(1), seg_end[:-1]])
            lov = per_class.float().mean()

            if ctx.needs_input_grad[0]:
                # d lovasz / d p_k = (1/K) * w * d|fg - p|/dp = -(w / K) * sgn(fg - p) at the
                # candidates; times p_k for the softmax Jacobian.
                w_c = torch.zeros(Npix + (0 if bg is None else bg[3].numel()), device=dev)
                w_c.index_copy_(0, perm, w_s.div_(K))
                p_fgf = p_fg.view(-1)
                gp_fg = (p_fgf * w_c[:Npix]).mul_(torch.sign(1.0 - p_fgf).neg_())  # 0 where ignored
                S = gp_fg.clone()  # sum over candidate classes of p_k g_k, per pixel
                if bg is None:
                    gp_b = tgt_b = row_b = None
                else:
                    row_b, k_b, x_b, p_b = bg
                    gp_b = p_b * w_c[Npix:] * torch.sign(p_b)  # -sgn(0 - p) = sgn(p)
                    S.index_add_(0, row_b * W + x_b, gp_b)
                    local_row = (torch.arange(N * H, device=dev) % H) % rows
                    tgt_b = (local_row[row_b] * C + classes[k_b]) * W + x_b  # in a [rows, C, W] band
                ctx.save_for_backward(L, safe, wpix, S.view(N, H, W), gp_fg.view(N, H, W), mx, sm,
                                      gp_b, tgt_b, row_b)
                ctx.meta = (H, W, float(Npix), avg_non_ignore)
                ctx.exact = rz.exact
                ctx.wmean = wmean
        return ce, lov

    @staticmethod
    def _backward(ctx: Any, g_ce: Tensor, g_lov: Tensor, n_threads: int):  # type: ignore[no-untyped-def]
        L, safe, wpix, S, gp_fg, mx, sm, gp_b, tgt_b, row_b = ctx.saved_tensors
        H, W, npix, _ = ctx.meta
        N = L.shape[0]
        dev = L.device
        rz = _Resized(L, H, W)
        exact = ctx.exact
        with torch.no_grad(), record_function("fused_ce_lovasz.backward_bands"):
            # dz = p * (a*w - g_lov*S) + onehot(label) * (g_lov * p_y g_y - a*w)
            #      + g_lov * p_k g_k on the background candidates
            a = g_ce / npix / (ctx.wmean + EPS_CE)
            aw = wpix * a
            coef = (aw - g_lov * S).div_(sm)  # p = exp2(z - max) / sum
            on_label = (gp_fg * g_lov).sub_(aw)
            if gp_b is not None:
                gp_b = gp_b * g_lov
                band_rows = torch.tensor([n * H + band[0] for n in range(N) for band in rz.bands] + [N * H],
                                         device=dev)
                bounds = torch.searchsorted(row_b, band_rows).tolist()  # sorted by pixel row
            bands = rz.bands
            n_bands = len(bands)
            dL_full = rz.new_grad(zero=False) if rz.full else None
            partial: dict[int, Tensor] = {}  # per thread (resize case): summed in a fixed order

            def work(lo: int, hi: int) -> None:
                dL = dL_full if rz.full else rz.new_grad(zero=True)
                if not rz.full:
                    partial[lo] = dL
                src, dsrc, src_n = None, None, -1
                for i in range(lo, hi):
                    n, band = divmod(i, n_bands)
                    r0, r1 = bands[band][0], bands[band][1]
                    if n != src_n:
                        if dsrc is not None:
                            rz.finish_image_grad(dL, dsrc, src_n)
                        src, dsrc, src_n = rz.image(n), rz.image_grad(), n
                    g = rz.load(src, bands[band], rz.band_buffer("z", r1 - r0))
                    if rz.full or i in exact:
                        g.sub_(mx[n, r0:r1].unsqueeze(1))
                    g.exp2_()
                    g.mul_(coef[n, r0:r1].unsqueeze(1))
                    g.scatter_add_(1, safe[n, r0:r1].unsqueeze(1), on_label[n, r0:r1].unsqueeze(1))
                    if gp_b is not None:
                        b_lo, b_hi = bounds[i], bounds[i + 1]
                        if b_hi > b_lo:
                            g.view(-1).index_add_(0, tgt_b[b_lo:b_hi], gp_b[b_lo:b_hi])
                    rz.store_grad(dL, dsrc, n, bands[band], g)
                if dsrc is not None:
                    rz.finish_image_grad(dL, dsrc, src_n)

            _SPLIT.run(work, N * n_bands, n_threads)
            if rz.full:
                dL = dL_full
            else:
                parts = [partial[k] for k in sorted(partial)]
                dL = parts[0]
                for other in parts[1:]:
                    dL.add_(other)
        return rz.grad_to_logits(dL), None, None, None, None


def fused_ce_lovasz(
    logits: Tensor,
    label: Tensor,
    ignore_index: int = 255,
    class_weight: Tensor | None = None,
    avg_non_ignore: bool = True,
) -> tuple[Tensor, Tensor]:
    """``(CrossEntropyLoss(logits, label), LovaszSoftmaxLoss(logits, label))`` in one pass.

    Same contract and semantics as the two losses (``classes="present"``): ``logits``
    ``[N, C, h, w]`` of any float dtype are bilinearly resized to the label size
    (``align_corners=False``) when it differs, without ever materialising the resized
    tensor; ``label`` is ``[N, H, W]`` or ``[N, 1, H, W]``. With every pixel ignored both
    are a zero connected to the graph, like the plain losses'.
    """
    if label.dim() == 4 and label.shape[1] == 1:
        label = label[:, 0]
    if logits.dim() != 4 or label.dim() != 3 or label.shape[0] != logits.shape[0]:
        raise ValueError(f"expected logits [N, C, H, W] and label [N, H, W], got {tuple(logits.shape)} "
                         f"and {tuple(label.shape)}")
    with no_autocast(logits.device):
        x = logits.float().contiguous()
        label = label.long().contiguous()
        if not bool((label != ignore_index).any()):
            zero = x.sum() * 0.0
            return zero, zero.clone()
        weight = None if class_weight is None else class_weight.to(x.device, torch.float32)
        return _FusedCELovasz.apply(x, label, weight, int(ignore_index), bool(avg_non_ignore))
