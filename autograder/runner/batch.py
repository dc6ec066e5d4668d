"""What every executor gets: one `Batch`, and the settings its kernels and tests run with.

An executor is a function `run(batch, bar) -> list[GradeResult]` (local_executor.run_local,
dask_executor.run_dask). The grading run's own settings (how many kernels share a machine, the
folders no kernel may see, the run's folder, the course's secret seed) travel in the nbgrader
`Config` that `run_settings` builds, never through environment variables: the kernel manager
(`SandboxedKernelManager`) and the executing preprocessor (`GuardedExecute`) read them from there.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from traitlets.config import Config

from autograder.config.course import Course


@dataclass(frozen=True)
class Batch:
    """One grading run: `students`' collected submissions of `assignment` in `course`.

    overrides: the run's changes to the course configuration (grade_overrides: limits, sandbox);
    workers: parallel workers (local processes, or a LocalCluster's processes);
    scheduler: a Dask scheduler's address (dask executor only; None: a LocalCluster).
    """

    course: Course
    assignment: str
    students: tuple[str, ...]
    overrides: Config
    workers: int
    scheduler: str | None = None


def run_settings(overrides: Config, *, kernels_per_host: int, hidden_folders: list[str],
                 grading_seed: int, run_dir: str = "") -> Config:
    """A copy of `overrides` with the grading run's own settings for kernels and tests.

    kernels_per_host: kernels running at once on one machine (their math threads share its cores);
    hidden_folders: host folders no kernel may see (the course being graded, ...);
    grading_seed: the course's secret seed, for the tests run in the grader (never the kernel);
    run_dir: the run's folder on the host, removed when it ends ('' = the system's temp folder).
    """
    config = copy.deepcopy(Config(overrides))
    config.SandboxedKernelManager.kernels_per_host = max(1, int(kernels_per_host))
    config.SandboxedKernelManager.hidden_folders = [str(folder) for folder in hidden_folders]
    config.SandboxedKernelManager.run_dir = str(run_dir)
    config.GuardedExecute.grading_seed = int(grading_seed)
    return config
