"""Where torch learners train (``model.device``), and the torch settings that make them reproducible.

Training must give the same parameters in the Flink job, in library mode and after a restore,
so torch runs deterministic kernels on one intra-op thread: a reduction then sums in the same
order whatever the machine's core count (and the small matrices of a mini-batch gain nothing
from more threads).
"""

from __future__ import annotations

import os
from functools import cache
from types import ModuleType


@cache
def reproducible_torch() -> ModuleType:
    """torch, imported on first use (a logistic job never loads it: it costs ~300 MB per process)
    and set up for deterministic training."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by deterministic cuBLAS
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    return torch


def resolve_device(requested: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cpu`` and ``cuda`` as they are."""
    if requested == "auto":
        return "cuda" if reproducible_torch().cuda.is_available() else "cpu"
    return requested


def training_device(kind: str, requested: str) -> str:
    """The device a job of ``kind`` trains on: the numpy kinds (logistic, ftrl, fm) always on the CPU."""
    return "cpu" if kind in ("logistic", "ftrl", "fm") else resolve_device(requested)


def describe(device: str) -> str:
    """The device in words for the start-up log, e.g. ``cuda (NVIDIA H100 80GB HBM3)``."""
    return f"cuda ({reproducible_torch().cuda.get_device_name()})" if device == "cuda" else "cpu"
