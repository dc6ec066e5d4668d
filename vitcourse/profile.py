"""Execution profiles: one switch that sizes every training cell in the course.

``VITCOURSE_PROFILE=quick`` trains on small subsets for a few steps, so the whole book
executes on a 2-core CPU in CI; ``full`` runs the real recipe (all data, all epochs).
When the variable is unset the profile is ``full`` if a CUDA GPU is present, ``quick``
otherwise.  Every chapter that trains prints :func:`run_label` next to its results, so a
number is never shown without the profile, device and data set that produced it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import torch

PROFILE_ENV = "VITCOURSE_PROFILE"
STANDIN_PREFIX = "synthetic-"  # every offline stand-in's name starts so (vitcourse.data.loaders.REAL_OF)
PROFILES = ("quick", "full")

T = TypeVar("T")


@dataclass(frozen=True)
class Profile:
    """The active profile and why it was chosen."""

    name: str
    reason: str

    @property
    def quick(self) -> bool:
        return self.name == "quick"

    @property
    def full(self) -> bool:
        return self.name == "full"

    def pick(self, *, quick: T, full: T) -> T:
        """Return ``quick`` in the quick profile and ``full`` in the full one."""
        return quick if self.quick else full

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def get_profile() -> Profile:
    """Read the profile from ``$VITCOURSE_PROFILE``, else choose by the hardware.

    Raises ValueError, naming the variable and the allowed values, for anything else.
    """
    raw = os.environ.get(PROFILE_ENV, "").strip().lower()
    if raw:
        if raw not in PROFILES:
            raise ValueError(
                f"{PROFILE_ENV}={os.environ[PROFILE_ENV]!r} is not a profile; "
                f"set it to one of {', '.join(PROFILES)} (or unset it to choose automatically)."
            )
        return Profile(raw, f"set by {PROFILE_ENV}")
    if torch.cuda.is_available():
        return Profile("full", "a CUDA GPU is present")
    return Profile("quick", f"no CUDA GPU; set {PROFILE_ENV}=full to override")


def run_label(dataset: str, device: torch.device | str | None = None,
              profile: Profile | None = None) -> str:
    """One line naming the profile, device and data set behind a result.

    >>> run_label("synthetic-fashion", "cpu", Profile("quick", "test"))
    'profile=quick · device=cpu · data=synthetic-fashion'
    """
    from vitcourse.device import get_device

    profile = profile or get_profile()
    device = device if device is not None else get_device()
    return f"profile={profile.name} · device={torch.device(device).type} · data={dataset}"


def device_words(device: torch.device | str) -> str:
    """Where a run ran, as prose says it: "on the CPU", "on a CUDA GPU"."""
    kind = torch.device(device).type
    return {"cpu": "on the CPU", "cuda": "on a CUDA GPU", "mps": "on an Apple GPU"}.get(kind, f"on {kind}")


def run_words(dataset: str, device: torch.device | str | None = None,
              profile: Profile | None = None) -> str:
    """:func:`run_label` as a sentence says it, for prose beside a result.

    >>> run_words("synthetic-cifar-clutter", "cpu", Profile("quick", "test"))
    'quick profile, on the CPU, on the synthetic-cifar-clutter stand-in'
    >>> run_words("cifar10", "cuda", Profile("full", "test"))
    'full profile, on a CUDA GPU, on the real CIFAR-10'
    """
    from vitcourse.data.sources import get_source  # (not data.loaders: it imports this module)
    from vitcourse.device import get_device

    profile = profile or get_profile()
    where = device_words(device if device is not None else get_device())
    data = (f"on the {dataset} stand-in" if dataset.startswith(STANDIN_PREFIX)
            else f"on the real {get_source(dataset).title}")
    return f"{profile.name} profile, {where}, {data}"
