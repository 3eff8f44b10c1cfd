"""Multi-process data parallel helpers (``torchrun``; gloo on CPU, nccl on CUDA)."""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
from torch import Tensor, nn


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes; returns ``(rank, world_size)``."""
    world = env_world_size()
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(x: Tensor) -> Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        x = x.clone()
        dist.all_reduce(x)
        x /= dist.get_world_size()
    return x


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


_SYNC_GROUP = None


def _sync_all_reduce(t: Tensor) -> Tensor:
    """Differentiable all-reduce (sum) on a process group of its own.

    A separate group keeps these collectives from interleaving with the
    gradient all-reduces that DDP issues asynchronously during backward.
    """
    global _SYNC_GROUP
    if _SYNC_GROUP is None:
        _SYNC_GROUP = dist.new_group(backend="gloo")
    return _AllReduceSum.apply(t, _SYNC_GROUP)


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t: Tensor, group) -> Tensor:  # type: ignore[override]
        ctx.group = group
        out = t.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class CPUSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose batch statistics are reduced over all processes, on any backend.

    ``torch.nn.SyncBatchNorm`` only runs on GPUs; this one uses differentiable
    ``all_reduce`` of per-process sums, so gloo (CPU) training matches a single
    process that sees the whole global batch.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        xf = x.float()
        c = x.shape[1]
        # Two passes (mean, then centred squares): E[x²] − E[x]² loses precision in float32.
        n = torch.tensor([x.numel() / c], dtype=torch.float32, device=x.device)
        first = _sync_all_reduce(torch.cat([xf.sum(dim=(0, 2, 3)), n]))
        count = first[-1]
        mean = first[:c] / count
        centred = xf - mean.view(1, -1, 1, 1)
        var = _sync_all_reduce((centred * centred).sum(dim=(0, 2, 3))) / count
        with torch.no_grad():
            if self.track_running_stats and self.running_mean is not None:
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * count / max(count - 1, 1), alpha=m)
                self.num_batches_tracked += 1
        y = centred / torch.sqrt(var.view(1, -1, 1, 1) + self.eps)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm2d with a synchronised one suited to ``device``."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def convert(m: nn.Module) -> nn.Module:
        if isinstance(m, nn.BatchNorm2d) and not isinstance(m, CPUSyncBatchNorm):
            new = CPUSyncBatchNorm(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
            new.load_state_dict(m.state_dict())
            new.train(m.training)
            return new
        for name, child in m.named_children():
            setattr(m, name, convert(child))
        return m

    return convert(model)


