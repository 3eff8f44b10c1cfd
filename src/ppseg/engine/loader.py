"""Deterministic, resumable data loading.

The training order is a pure function of ``(seed, iteration)``: epoch ``e`` is a
permutation drawn from ``seed + e``; each global batch takes the next
``batch_size × world_size`` indices and each process its own slice. Every
sample also gets its own augmentation seed derived from ``(seed, epoch, index)``,
so the augmented batch at iteration ``k`` is the same whatever the number of
workers and whether or not the run was resumed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import PPSegError


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint32)[0])


class TrainBatchSampler(Sampler[list[tuple[int, int]]]):
    """Endless per-process batches of ``(index, sample_seed)``, starting at ``start_iter``."""

    def __init__(self, num_samples: int, batch_size: int, seed: int, rank: int = 0,
                 world_size: int = 1, start_iter: int = 0) -> None:
        global_batch = batch_size * world_size
        if num_samples < global_batch:
            raise PPSegError(
                f"the training set has {num_samples} samples, fewer than one global batch "
                f"({batch_size} per process × {world_size} processes); lower batch_size")
        self.n = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world = world_size
        self.batches_per_epoch = num_samples // global_batch
        self.start_iter = start_iter

    def position(self, iteration: int) -> tuple[int, int]:
        """(epoch, batch within epoch) of the 0-based global ``iteration``."""
        return divmod(iteration, self.batches_per_epoch)

    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        it = self.start_iter
        epoch, b = self.position(it)
        perm = self._perm(epoch)
        while True:
            g = self.batch_size * self.world
            start = b * g + self.rank * self.batch_size
            idx = perm[start:start + self.batch_size]
            yield [(int(i), sample_seed(self.seed, epoch, int(i))) for i in idx]
            b += 1
            if b >= self.batches_per_epoch:
                epoch, b = epoch + 1, 0
                perm = self._perm(epoch)

    def __len__(self) -> int:  # endless; DataLoader only needs it for len()
        return 2**31 - 1


def _worker_init(_: int) -> None:
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _worker_context() -> str | None:
    """Start loader workers from a clean server process, not by forking this one.

    Forking a process that already runs threads (OpenMP, a thread pool, a
    TensorBoard writer) can copy a held lock into the worker, which then hangs.
    """
    import multiprocessing as mp

    return "forkserver" if "forkserver" in mp.get_all_start_methods() else None


def make_train_loader(dataset: Dataset, sampler: TrainBatchSampler, num_workers: int,
                      collate, pin_memory: bool = False) -> DataLoader:
    # A private generator keeps the loader from drawing on (and advancing) the
    # global torch RNG, which is saved and restored on resume.
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate,
                      pin_memory=pin_memory, worker_init_fn=_worker_init if num_workers else None,
                      persistent_workers=num_workers > 0, prefetch_factor=2 if num_workers else None,
                      multiprocessing_context=_worker_context() if num_workers else None,
                      generator=torch.Generator().manual_seed(sampler.seed))


def make_eval_loader(dataset: Dataset, num_workers: int, collate, rank: int = 0, world_size: int = 1) -> DataLoader:
    """Batch size 1 (images keep their own sizes); process ``rank`` takes every ``world_size``-th image."""
    indices = list(range(rank, len(dataset), world_size))
    return DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=1, shuffle=False,
                      num_workers=num_workers, collate_fn=collate,
                      worker_init_fn=_worker_init if num_workers else None,
                      multiprocessing_context=_worker_context() if num_workers else None)


def user_errors(batches: Iterable) -> Iterator:
    """Iterate ``batches``, turning a user-input error raised in a loader worker back into one line.

    DataLoader re-raises a worker's exception with the worker's traceback in its
    message; the last line of that traceback is the original error.
    """
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except PPSegError as e:
            text = str(e)
            if "Traceback" not in text:
                raise
            last = text.strip().splitlines()[-1]
            raise type(e)(last.split(": ", 1)[1] if ": " in last else last) from None
        yield batch
