"""Device choice (cuda > mps > cpu), bf16 support, CPU threads and memory, seeding of the course's random sources."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import random
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

DEVICE_ENV = "VITCOURSE_DEVICE"


def get_device(prefer: str | None = None) -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU.

    ``prefer`` (or ``$VITCOURSE_DEVICE``) forces one, e.g. ``"cpu"`` to compare speeds;
    asking for a device that is not present raises with the devices that are.
    """
    wanted = prefer or os.environ.get(DEVICE_ENV)
    available = ["cpu"]
    if torch.cuda.is_available():
        available.insert(0, "cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        available.insert(-1, "mps")
    if wanted:
        kind = torch.device(wanted).type
        if kind not in available:
            raise ValueError(
                f"device {wanted!r} was asked for but is not available here; "
                f"available: {', '.join(available)}."
            )
        return torch.device(wanted)
    return torch.device(available[0])


def indexed_device(device: torch.device | str) -> torch.device:
    """``cuda`` → ``cuda:<current>``, so it compares equal to the device tensors report."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def has_fast_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware, several times faster than float32.

    True on CUDA GPUs with bf16 support and on CPUs with bf16 matrix instructions (AVX512-BF16
    or AMX, e.g. Intel Xeons since Cooper Lake, AMD Zen 4). Older CPUs and Apple's MPS convert
    bf16 in software, which is slower than float32: ``bench/first_vit_step_speed.py`` measures
    both on the machine at hand (medians of steady-state steps).
    """
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind == "cpu":
        # torch.cpu's feature probes (what oneDNN itself checks before picking a bf16 kernel).
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return False


def autocast_dtype(device: torch.device | str, enabled: bool | None = None) -> torch.dtype | None:
    """The autocast dtype to train in, or None for plain float32.

    ``enabled=None``: bfloat16 on CUDA (its matrix units run bf16 many times faster, and bf16
    keeps float32's range, so no loss scaling is needed), float32 elsewhere. ``True`` forces bf16
    on any device (see :func:`has_fast_bf16` for where it pays), ``False`` turns it off.
    """
    kind = torch.device(device).type
    if enabled is None:
        enabled = kind == "cuda"
    if enabled and kind == "cuda" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        warnings.warn("this GPU has no bfloat16 support; training in float32", stacklevel=2)
        return None
    return torch.bfloat16 if enabled else None


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def keep_freed_memory(mmap_threshold_mb: int = 32, trim_threshold_mb: int = 128) -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the OS.

    On the CPU, PyTorch mallocs every activation and frees it moments later. glibc serves large
    blocks with fresh ``mmap`` s and returns free memory at the top of its heap to the OS, so the
    next training step's tensors land on new pages that the OS maps in one page fault per 4 KiB.
    Three epochs of the first ViT (with their validation passes) took 0.75-0.95 million page
    faults here and 40 thousand with this setting, and ran about 10 % faster. With it, blocks up
    to ``mmap_threshold_mb`` come from the heap, and up to ``trim_threshold_mb`` of free heap is
    kept. Process-wide and applied once; returns whether it applied (Linux with glibc only).
    """
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name is not None else None
    if not (hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt")):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold_mb << 20)
                and libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold_mb << 20))


def seed_everything(seed: int = 0, deterministic: bool = False) -> torch.Generator:
    """Seed Python's, NumPy's and PyTorch's generators; return a seeded torch Generator.

    ``deterministic=True`` also asks PyTorch for deterministic kernels (slower on GPU,
    and it raises on operations that have none), for runs that must repeat bit for bit.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
    return torch.Generator().manual_seed(seed)


@contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` intra-op CPU threads, then restore torch's setting.

    On an idle machine torch's default (one thread per core) is fastest, even for the course's
    small models. When the cores are shared — several notebooks at once, a grader running
    one submission per core — a thread waiting for a busy core stalls the others at every
    join of a parallel operation, and fewer threads can be several times faster
    (bench/seed_vit_speed.py times both settings). ``None`` leaves the setting alone.
    """
    if count is None:
        yield
        return
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"cpu_threads must be a positive int or None, got {count!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
