"""nbgrader's Execute preprocessor, hardened so one bad submission never stops a batch.

Differences from nbgrader's Execute (the scoring rule itself is untouched: a grade
cell scores 0 exactly when it has an error output):
  * kernels start through SandboxedKernelManager (sandbox + resource limits);
  * a wall-clock budget for the whole notebook on top of the per-cell timeout;
  * a dead kernel (os._exit, segfault, killed for memory) or an exhausted budget does
    not abort the notebook: cells that already ran keep their outputs and points,
    and every code cell that could not run gets an error output naming the reason,
    so its grade cell scores 0 instead of being skipped (nbgrader would otherwise
    give a never-executed grade cell full marks, or fail the whole submission);
  * output is capped while it streams in, so megabytes of prints cannot exhaust the
    grader's memory;
  * with ``start_kernels_ahead`` (batch grading: `grade` turns it on), the next
    submission's sandboxed kernel is started while this one's notebook runs, so its
    half-second boot overlaps work instead of adding to it. A kernel
    started ahead has seen nothing: an empty scratch folder until the submission's files
    are copied in, and it serves exactly one notebook, like any other.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing.util
import os
import re
import time
from pathlib import Path

from nbclient.exceptions import DeadKernelError
from nbclient.util import run_sync
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer

from .sandbox import SandboxedKernelManager

# Error names written into notebooks; export counts them as failure reasons.
KERNEL_DIED = "KernelDied"
WALL_CLOCK = "WallClockLimitExceeded"
NOT_RUN = "NotExecuted"
OUTPUT_LIMIT = "OutputLimitExceeded"


def error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"{ename}: {evalue}"])


def _uses_torch(nb: NotebookNode) -> bool:
    """Whether the instructor's locked code cells import torch, directly or through vitcourse."""
    return any(cell.cell_type == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("locked")
               and re.search(r"^\s*(import|from)\s+(torch|vitcourse)\b", cell.source, re.M)
               for cell in nb.cells)


# ---- kernels started ahead (one per grading process) -----------------------------------

_spare: dict = {}            # {"key": ..., "km": a started SandboxedKernelManager}
_more_to_come = [False]      # set by the batch executor: will this process grade another notebook?


def expect_more_notebooks(flag: bool) -> None:
    """Tell this process whether another notebook follows the current one (batch executors).

    Only then is a kernel started ahead: one nobody uses would cost a boot for nothing.
    """
    _more_to_come[0] = bool(flag)


def _shutdown_spare() -> None:
    """Kill the kernel started ahead, if any (a key mismatch, or the process is ending)."""
    spare = _spare.pop("km", None)
    _spare.pop("key", None)
    if spare is None:
        return
    try:
        run_sync(spare.shutdown_kernel)(now=True)
    except Exception:  # the process is ending or the kernel is gone: nothing left to save
        pass


_cleanup_registered_in: list[int] = []


def _register_exit_cleanup() -> None:
    """Kill a leftover spare kernel when this process ends (once per process)."""
    if os.getpid() in _cleanup_registered_in:
        return
    _cleanup_registered_in.append(os.getpid())
    atexit.register(_shutdown_spare)
    # Pool workers leave through multiprocessing's exit path, where atexit does not run (and a
    # forked child starts with an empty finalizer registry: hence registering here, not at import).
    multiprocessing.util.Finalize(None, _shutdown_spare, exitpriority=10)


def _drop_last(outs: list, out: NotebookNode) -> None:
    """Remove `out`, which nbclient has just appended to `outs`."""
    if outs and outs[-1] is out:
        outs.pop()


class GuardedExecute(Execute):
    """Execute with a notebook wall-clock budget, dead-kernel recovery and an output cap."""

    wall_clock_limit = Integer(
        600, help="Seconds the whole notebook may run; then remaining cells score 0.").tag(config=True)
    max_output_chars = Integer(
        2_000_000, help="Output characters kept per notebook; later output is dropped.").tag(config=True)
    start_kernels_ahead = Bool(
        False, help="Start the next notebook's kernel while this one runs (when the batch "
                    "executor says another notebook follows).").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(*args, **kwargs)

    def preprocess(self, nb, resources=None, km=None):
        self._deadline = time.monotonic() + self.wall_clock_limit
        self._stopped_reason: tuple[str, str] | None = None
        self._output_chars = 0
        self._output_truncated = False
        return super().preprocess(nb, resources, km)

    def create_kernel_manager(self):
        km = self._configured_kernel_manager()
        if not (self.start_kernels_ahead and isinstance(km, SandboxedKernelManager)):
            return km
        if _spare.get("key") == self._kernel_key(km) and run_sync(_spare["km"].is_alive)():
            spare = _spare.pop("km")
            _spare.pop("key")
            spare.receive_submission(Path(self.resources.get("metadata", {}).get("path") or "."))
            return spare        # nbclient's setup_kernel sees a running kernel and only connects
        _shutdown_spare()       # none, dead, or started for another kind of notebook: not this one's
        return km

    def _configured_kernel_manager(self):
        current = self.km
        km = super().create_kernel_manager()
        self.km = current   # nbclient's method also assigns self.km; the caller decides that
        # Hidden-test helpers must capture torch's real functions before student code runs.
        if isinstance(km, SandboxedKernelManager) and _uses_torch(self.nb):
            km.boot_modules = ["torch", *km.boot_modules]
        return km

    def _kernel_arguments(self, km) -> list[str]:
        """The kernel's extra command-line arguments, as nbclient's start_new_kernel adds them."""
        arguments = list(self.extra_arguments)
        if (getattr(km, "ipykernel", False) and self.ipython_hist_file
                and not any(a.startswith("--HistoryManager.hist_file") for a in arguments)):
            arguments.append(f"--HistoryManager.hist_file={self.ipython_hist_file}")
        return arguments

    def _kernel_key(self, km) -> tuple:
        """What a kernel started ahead must share with the notebook that takes it."""
        return (km.kernel_name, tuple(km.boot_modules), tuple(self._kernel_arguments(km)))

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        if self.start_kernels_ahead and _more_to_come[0] and "km" not in _spare:
            await self._start_spare_kernel()
        return kc

    # nbclient wraps the *base* coroutine at class creation; re-wrap the override.
    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    async def _start_spare_kernel(self) -> None:
        """Launch the next notebook's kernel now; it boots while this notebook runs."""
        km = self._configured_kernel_manager()
        if not isinstance(km, SandboxedKernelManager):
            return
        km.started_ahead = True
        _register_exit_cleanup()
        try:
            await km.start_kernel(extra_arguments=self._kernel_arguments(km))
        except Exception as error:  # the next notebook starts its own kernel as usual
            self.log.warning("Could not start a kernel ahead: %s", error)
            return
        _spare.update(key=self._kernel_key(km), km=km)

    def _remaining(self) -> float:
        return self._deadline - time.monotonic()

    def _get_timeout(self, cell):
        per_cell = super()._get_timeout(cell)
        budget = max(1, int(self._remaining()) + 1)
        return budget if per_cell is None else min(per_cell, budget)

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        if self._stopped_reason is None and self._remaining() <= 0:
            self._stopped_reason = (WALL_CLOCK, f"the notebook used its {self.wall_clock_limit} s budget")
        if self._stopped_reason is not None:
            ename, why = self._stopped_reason
            cell.outputs = [error_output(NOT_RUN, f"not executed: {why}")]
            return cell
        # The per-cell timeout interrupts a busy cell; this outer guard catches cells
        # that ignore the interrupt (e.g. `except BaseException: pass` in a loop).
        grace = 10
        try:
            return await asyncio.wait_for(
                super().async_execute_cell(cell, cell_index, execution_count, store_history),
                timeout=max(1.0, self._remaining()) + grace)
        except DeadKernelError:
            why = "the kernel died (os._exit, a crash, or the memory limit)"
            self._stopped_reason = (KERNEL_DIED, why)
            cell.outputs.append(error_output(KERNEL_DIED, why))
        except asyncio.TimeoutError:
            why = f"the notebook used its {self.wall_clock_limit} s budget and ignored the interrupt"
            self._stopped_reason = (WALL_CLOCK, why)
            cell.outputs.append(error_output(WALL_CLOCK, why))
            await self._kill_kernel()
        return cell

    # nbclient wraps the *base* coroutine at class creation; re-wrap the override.
    execute_cell = run_sync(async_execute_cell)

    async def _kill_kernel(self) -> None:
        if self.km is not None:
            try:
                await self.km.shutdown_kernel(now=True)
            except Exception as error:  # the kernel is being discarded anyway
                self.log.warning("Could not shut down the kernel cleanly: %s", error)

    def output(self, outs, msg, display_id, cell_index):
        out = super().output(outs, msg, display_id, cell_index)
        # Error outputs decide scores: never drop them.
        if out is None or out.get("output_type") == "error":
            return out
        if self._output_truncated:
            _drop_last(outs, out)
            return None
        self._output_chars += len(str(out))
        if self._output_chars > self.max_output_chars:
            _drop_last(outs, out)
            outs.append(NotebookNode(
                output_type="stream", name="stderr",
                text=f"[{OUTPUT_LIMIT}: the notebook printed more than {self.max_output_chars} "
                     "characters; the rest of its output was dropped]\n"))
            self._output_truncated = True
            return None
        return out
