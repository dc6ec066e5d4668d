"""Measuring code: time per call, peak tensor memory, multiply-adds — on any device, the CPU included.

* :func:`best_seconds` — the best of several timed loops (``timeit``'s rule: other work only adds time);
* :func:`median_seconds` — the steady state after warm-up calls, the median of timed loops;
* :func:`peak_tensor_bytes` — the most bytes of tensors a call holds alive at once;
* :func:`counted_macs` — the multiply-adds PyTorch's FLOP counter finds in a call.

Chapter 9 measures attention's scaling with them (:func:`vitcourse.swin.attention_scaling`).
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class _LiveTensorBytes(TorchDispatchMode):
    """Counts the bytes of tensor storages created inside it that are alive at once; keeps the peak."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self._seen: set[int] = set()

    def _release(self, key: int, nbytes: int) -> None:
        self._seen.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # An output sharing an input's storage (a view, an in-place op) allocated nothing new.
        inputs = {id(t.untyped_storage()) for t in torch.utils._pytree.tree_leaves((args, kwargs))
                  if isinstance(t, torch.Tensor) and t.device.type != "meta"}
        for tensor in torch.utils._pytree.tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and tensor.device.type != "meta":
                storage = tensor.untyped_storage()
                key = id(storage)
                if key not in self._seen and key not in inputs and storage.nbytes():
                    self._seen.add(key)
                    self.live += storage.nbytes()
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._release, key, storage.nbytes())
        return out


def peak_tensor_bytes(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)``; return (its result, peak bytes of the tensors it created).

    Every tensor an operator returns is counted from its creation until its storage is freed
    (views share their base's storage and count once); the peak is the largest total alive
    at one moment. Tensors that existed before the call (inputs, weights) are not counted,
    nor are scratch buffers a kernel allocates and frees inside itself — so for a fused
    kernel such as ``scaled_dot_product_attention`` this counts its output, not its workspace.
    Works on any device, the CPU included, where PyTorch keeps no allocator statistics.
    """
    counter = _LiveTensorBytes()
    with counter:
        result = fn(*args, **kwargs)
    return result, counter.peak


def _timed_calls(fn, args, kwargs, calls: int, device) -> float:
    """Seconds ``calls`` back-to-back calls of ``fn`` take (the GPU synchronised around them)."""
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn(*args, **kwargs)
    if cuda:
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def best_seconds(fn, *args, repeats: int = 5, min_time: float = 0.02, device: torch.device | str = "cpu",
                 **kwargs) -> float:
    """Seconds one call of ``fn(*args, **kwargs)`` takes: the best of ``repeats`` timed loops.

    As ``timeit`` does: one warm-up call, then enough calls per loop that a loop lasts at least
    ``min_time`` (so the clock's resolution does not matter), and the fastest loop per call.
    The minimum, not the mean: on a shared machine other work only ever adds time. On CUDA the
    GPU is synchronised before the clock is read.
    """
    def loop(calls: int) -> float:
        return _timed_calls(fn, args, kwargs, calls, device)

    calls = 1
    first = loop(1)                                       # the warm-up, also a first estimate
    if first < min_time:
        calls = max(1, math.ceil(min_time / max(first, 1e-6)))
    return min(loop(calls) for _ in range(repeats)) / calls


def median_seconds(fn, *args, repeats: int = 7, warmup: int = 2, min_time: float = 0.005,
                   device: torch.device | str = "cpu", **kwargs) -> float:
    """Seconds one call of ``fn(*args, **kwargs)`` takes in the steady state: a median.

    ``warmup`` untimed calls first (the first call pays for allocations, caches and lazy
    initialisation, and says nothing about the steady state), then ``repeats`` timed loops of
    enough calls that a loop lasts at least ``min_time``; the result is the median loop's time
    per call. The median, not the mean, so that one loop slowed by other work on a shared
    machine does not move it. On CUDA the GPU is synchronised before the clock is read.
    """
    def loop(calls: int) -> float:
        return _timed_calls(fn, args, kwargs, calls, device)

    if repeats < 1 or warmup < 1:
        raise ValueError(f"repeats and warmup must be at least 1, got {repeats} and {warmup}")
    for _ in range(warmup - 1):
        loop(1)
    last_warmup = loop(1)
    calls = max(1, math.ceil(min_time / max(last_warmup, 1e-6)))
    times = sorted(loop(calls) / calls for _ in range(repeats))
    middle = len(times) // 2
    return times[middle] if len(times) % 2 else (times[middle - 1] + times[middle]) / 2


def counted_macs(fn, *args, **kwargs) -> int:
    """Multiply-adds of ``fn(*args, **kwargs)`` as PyTorch's FLOP counter counts them (FLOPs / 2).

    Only the matrix products are counted, as in the paper's formulas. On a CPU the counter
    cannot see inside the fused ``scaled_dot_product_attention`` kernel (it counts it as 0), so
    count through the explicit path (``return_weights=True``), which computes the same products.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops() // 2


@contextlib.contextmanager
def cpu_hog(processes: int | None = None):
    """One busy-looping process per core (or ``processes``) for the duration: a busy machine.

    The benchmarks measure beside it, and the grading tests check that a busy machine gives the
    same grades.
    """
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(processes or os.cpu_count() or 1)]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
