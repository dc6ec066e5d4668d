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

Graded test cells never reach the student's kernel. When the notebook arrives at one, the
grader runs that cell's source (visible and hidden tests) in *its own* process, in a namespace
built from the instructor's locked cells run here too, and reaches the submission's answers only
through autograder/sandbox/channel.py: plain values by value, everything else as handles whose calls run
in the kernel. Every test cell fetches the submission's names it reads afresh, so it sees them as
they are at that point of the notebook (a model made anew, wrapped or reloaded between two test
cells is the one graded). So nothing a student cell installs in its interpreter (input transformers,
event hooks, trace or import hooks, patched numpy/torch, lying objects) can reach, skip, fool or
read a test. The cell's outputs are the grader's verdict alone ("passed", or the failed check's
message), and its points follow nbgrader's rule (an error output scores 0).
"""

from __future__ import annotations

import ast
import asyncio
import atexit
import builtins
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

from autograder import grading
from autograder.sandbox.channel import ChannelError, KernelChannel
from autograder.config.course import read_grading_seed
from autograder.sandbox.launch import SandboxedKernelManager

# Error names written into notebooks; export counts them as failure reasons.
KERNEL_DIED = "KernelDied"
WALL_CLOCK = "WallClockLimitExceeded"
CPU_BUDGET = "CPUBudgetExceeded"
CELL_TIMEOUT = "CellTimeoutError"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) used so far by process `root` and all its descendants.

    Read from /proc, so a kernel's own children (and its sandbox's) count towards its limits.
    """
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read().decode(errors="replace")
        except OSError:
            continue                     # the process ended meanwhile
        fields = stat[stat.rfind(")") + 2:].split()
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        times[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total
NOT_RUN = "NotExecuted"
OUTPUT_LIMIT = "OutputLimitExceeded"


def error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"{ename}: {evalue}"])


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_test_cell(cell) -> bool:
    """An autograded test cell: a graded code cell the student does not write in."""
    info = _nbgrader(cell)
    return cell.cell_type == "code" and bool(info.get("grade")) and not info.get("solution")


def is_instructor_code(cell) -> bool:
    """A locked, ungraded code cell of the instructor's (imports, data set-up)."""
    info = _nbgrader(cell)
    return (cell.cell_type == "code" and bool(info.get("locked")) and not info.get("grade")
            and not info.get("solution"))


_BUILTIN_NAMES = frozenset(dir(builtins))
# Where the grader writes the review flags its tests raised (autograder/commands/grade.py reads them).
REVIEW_METADATA = "autograder"


def free_names(source: str) -> set[str]:
    """Names a cell reads that it neither assigns, imports, nor receives as arguments."""
    read, bound = _read_and_bound(source)
    return read - bound - _BUILTIN_NAMES


def assigned_names(source: str) -> set[str]:
    """Names a cell assigns, imports, defines or receives as arguments, anywhere in it."""
    return _read_and_bound(source)[1]


def _read_and_bound(source: str) -> tuple[set[str], set[str]]:
    """(names the cell loads, names it binds)."""
    tree = ast.parse(source)
    read, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return read, bound


def verdict_outputs(grade_id: str, points, error: BaseException | None) -> list[NotebookNode]:
    """What a graded cell shows: the grader's own words, never anything the tests printed."""
    if error is None:
        return [NotebookNode(output_type="stream", name="stdout",
                             text=f"{grade_id}: passed ({points:g} of {points:g} points)\n")]
    ename = type(error).__name__
    message = " ".join(str(error).split())[:600] or "a check failed"
    return [error_output(ename, message)]


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
    """Execute with limits in CPU-seconds, dead-kernel recovery and an output cap.

    Limits count the CPU time of the kernel and its children, not the clock: on a machine busy
    with other work a correct notebook gets the same time to compute as on an idle one. A cell
    is interrupted after `Execute.timeout` CPU-seconds; the notebook stops after `cpu_budget`.
    Code that waits without computing (sleep, a blocked read) is stopped by the clock after
    `wall_factor` times those limits.
    """

    cpu_budget = Integer(
        600, help="CPU-seconds the whole notebook may use; then remaining cells score 0.").tag(config=True)
    wall_factor = Integer(
        10, help="Wall-clock cap of a cell and of the notebook, as a multiple of its CPU limit.").tag(config=True)
    max_output_chars = Integer(
        2_000_000, help="Output characters kept per notebook; later output is dropped.").tag(config=True)
    start_kernels_ahead = Bool(
        False, help="Start the next notebook's kernel while this one runs (when the batch "
                    "executor says another notebook follows).").tag(config=True)
    grading_seed = Integer(
        None, allow_none=True,
        help="The course's secret grading seed, for the tests run in this process (never the kernel's); "
             "set by `grade`; unset: read from the course folder (plain `nbgrader autograde`)."
    ).tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(*args, **kwargs)

    def preprocess(self, nb, resources=None, km=None):
        self._deadline = time.monotonic() + self.wall_factor * self.cpu_budget
        self._cpu_at_start: float | None = None
        self._stopped_reason: tuple[str, str] | None = None
        self._output_chars = 0
        self._output_truncated = False
        self._channel: KernelChannel | None = None
        self._channel_opened = False
        self._grader_namespace: dict = {}
        self._grader_names: set[str] = set()
        self._review_flags: list[str] = []
        self._seed: int | None = None
        nb.metadata.pop(REVIEW_METADATA, None)   # only the grader writes it, never the submission
        try:
            nb, resources = super().preprocess(nb, resources, km)
        finally:
            if self._channel is not None:
                self._channel.close()
        if self._review_flags:
            nb.metadata[REVIEW_METADATA] = {"review_flags": sorted(set(self._review_flags))}
        return nb, resources

    def course_seed(self) -> int | None:
        """The secret seed for this run's tests: `grading_seed` (set by `grade`), else the one in
        the course folder (plain `nbgrader autograde` there), else None (secret_seed() gives 0)."""
        if self.grading_seed is not None:
            return self.grading_seed
        return read_grading_seed(Path(self.config.CourseDirectory.get("root") or "."))

    def _open_channel(self) -> None:
        """The folder the grader and the kernel exchange values through (channel.py), made before
        any student code runs, in the kernel's private runtime folder."""
        runtime = getattr(self.km, "_runtime", None)
        if runtime is None:
            return
        self._seed = self.course_seed()
        self._channel = KernelChannel(Path(runtime) / "channel", self._run_in_kernel_from_thread,
                                      kernel_uid=getattr(self.km, "kernel_uid", None))
        self._grader_namespace = {"__name__": "__main__", "print": lambda *args, **kwargs: None}

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
        # A torch notebook's kernel imports torch while it boots (a kernel started ahead pays
        # for it while the previous notebook runs).
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
        """Wall-clock seconds left before the notebook's hard cap."""
        return self._deadline - time.monotonic()

    def _kernel_cpu(self) -> float | None:
        """CPU-seconds used by the kernel's processes so far (None when it cannot be read)."""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is None:
            return None
        return process_tree_cpu_seconds(process.pid)

    def _get_timeout(self, cell):
        # nbclient's own timer is the wall-clock cap; the CPU limits are watched by _watch_cell.
        per_cell = super()._get_timeout(cell)
        budget = max(1, int(self._remaining()) + 1)
        return budget if per_cell is None else min(per_cell * self.wall_factor, budget)

    async def _watch_cell(self, state: dict) -> None:
        """Interrupt the running cell when it has used its CPU-seconds, or the notebook its
        budget; kill the kernel if it ignores the interrupt."""
        used_before = self._kernel_cpu()
        if used_before is None:
            return
        if self._cpu_at_start is None:
            self._cpu_at_start = used_before
        interrupted_at = None
        while True:
            await asyncio.sleep(0.2)
            used = self._kernel_cpu()
            if used is None:
                return
            if interrupted_at is None:
                if self.timeout and used - used_before > self.timeout:
                    state["reason"] = (CELL_TIMEOUT, f"the cell used its {self.timeout} CPU-seconds and was interrupted")
                elif used - self._cpu_at_start > self.cpu_budget:
                    state["reason"] = (CPU_BUDGET, f"the notebook used its {self.cpu_budget} CPU-seconds")
                    self._stopped_reason = state["reason"]
                if "reason" in state:
                    interrupted_at = time.monotonic()
                    await self.km.interrupt_kernel()
            elif time.monotonic() - interrupted_at > 10:
                state["killed"] = True
                self._stopped_reason = (state["reason"][0], state["reason"][1] + " (it ignored the interrupt)")
                await self._kill_kernel()
                return

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if not self._channel_opened and self.kc is not None:
            # Before the first cell runs (nothing of the student's has run yet).
            self._channel_opened = True
            self._open_channel()
        if self._channel is not None and is_test_cell(cell):
            return await self._grade_cell(cell, cell_index)
        cell = await self._execute_in_kernel(cell, cell_index, execution_count, store_history)
        if self._channel is not None and is_instructor_code(cell) and cell.source.strip():
            # The tests' namespace gets the instructor's set-up from the instructor's code run
            # here, never from the student's kernel.
            self._loop, self._op_cell_index, self._op_cell = asyncio.get_running_loop(), cell_index, cell
            await asyncio.to_thread(self._run_in_grader, cell.source, "set-up cell")
        return cell

    # nbclient wraps the *base* coroutine at class creation; re-wrap the override.
    execute_cell = run_sync(async_execute_cell)

    async def _grade_cell(self, cell, cell_index):
        """Run a test cell in the grader's process; its outputs become the verdict."""
        info = _nbgrader(cell)
        if self._stopped_reason is not None:   # the kernel is gone: nothing left to test
            cell.outputs = [error_output(NOT_RUN, f"not executed: {self._stopped_reason[1]}")]
            return cell
        self._loop, self._op_cell_index, self._op_cell = asyncio.get_running_loop(), cell_index, cell
        error = await asyncio.to_thread(self._run_in_grader, cell.source, info.get("grade_id", "test"))
        cell.outputs = verdict_outputs(info.get("grade_id", "test"), float(info.get("points", 0) or 0), error)
        return cell

    def _run_in_grader(self, source: str, label: str) -> BaseException | None:
        """exec `source` in the tests' namespace (this process), with the submission's names it
        reads bound through the channel; returns the exception it raised, if any."""
        grading.set_current_channel(self._channel)
        grading.set_secret_seed(self._seed)
        grading.collect_flags(self._review_flags)
        try:
            code = compile(source, f"<{label}>", "exec")
            self._bind_submission_names(source)
            exec(code, self._grader_namespace)
        except Exception as error:  # noqa: BLE001 - a failing test is a verdict, not a crash
            return error
        finally:
            grading.set_current_channel(None)
            grading.set_secret_seed(None)
            grading.collect_flags(None)
        return None

    def _bind_submission_names(self, source: str) -> None:
        """Bind, afresh, every name `source` reads that no code of the grader's defined: each is
        fetched from the kernel as it is now (a name the kernel no longer has is unbound, so the
        test sees a NameError, not a stale value). The grader's own names (set-up cells, earlier
        test cells) are never taken from the kernel."""
        namespace = self._grader_namespace
        wanted = sorted(free_names(source) - self._grader_names)
        for name in wanted:
            namespace.pop(name, None)
        self._grader_names |= assigned_names(source)
        if wanted:
            namespace.update(self._channel.bind(wanted))

    def _run_in_kernel_from_thread(self, code: str) -> None:
        """Called by the channel from the tests' thread: run one line in the kernel, wait."""
        if self._stopped_reason is not None:
            raise ChannelError(f"the submission could not be called: {self._stopped_reason[1]}")
        future = asyncio.run_coroutine_threadsafe(self._run_in_kernel(code), self._loop)
        future.result()

    async def _run_in_kernel(self, code: str) -> None:
        cell = NotebookNode(cell_type="code", source=code, metadata={}, outputs=[], execution_count=None)
        try:
            cell = await self._execute_in_kernel(cell, self._op_cell_index, None, store_history=False)
        finally:
            # nbclient stores the cell it ran at its index: put the test cell back.
            self.nb.cells[self._op_cell_index] = self._op_cell
        if self._stopped_reason is not None:
            raise ChannelError(f"the submission could not be called: {self._stopped_reason[1]}")
        errors = [out for out in cell.outputs if out.get("output_type") == "error"]
        if errors:
            raise ChannelError(f"the kernel could not answer the tests ({errors[-1].get('ename')})")

    async def _execute_in_kernel(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        if self._stopped_reason is None and self._remaining() <= 0:
            self._stopped_reason = (WALL_CLOCK, f"the notebook reached its wall-clock cap "
                                                f"({self.wall_factor} x {self.cpu_budget} s)")
        if self._stopped_reason is not None:
            ename, why = self._stopped_reason
            cell.outputs = [error_output(NOT_RUN, f"not executed: {why}")]
            return cell
        # The watchdog interrupts a cell over its CPU limit and kills a kernel that ignores the
        # interrupt (e.g. `except BaseException: pass` in a loop); this outer guard is the clock's.
        grace = 10
        state: dict = {}
        watchdog = asyncio.ensure_future(self._watch_cell(state))
        try:
            cell = await asyncio.wait_for(
                super().async_execute_cell(cell, cell_index, execution_count, store_history),
                timeout=max(1.0, self._remaining()) + grace)
        except DeadKernelError:
            if state.get("killed"):
                why = self._stopped_reason[1]
            elif getattr(self.km, "ran_out_of_memory", lambda: False)():
                why = (f"the kernel was stopped: the submission used its memory budget "
                       f"({getattr(self.km, 'memory_limit_mb', '?')} MiB over all its processes and files)")
                self._stopped_reason = (KERNEL_DIED, why)
            else:
                why = "the kernel died (os._exit, a crash, or the memory limit)"
                self._stopped_reason = (KERNEL_DIED, why)
            cell.outputs.append(error_output(self._stopped_reason[0], why))
            return cell
        except asyncio.TimeoutError:
            why = "the notebook reached its wall-clock cap and ignored the interrupt"
            self._stopped_reason = (WALL_CLOCK, why)
            cell.outputs.append(error_output(WALL_CLOCK, why))
            await self._kill_kernel()
            return cell
        finally:
            watchdog.cancel()
        if "reason" in state:
            cell.outputs.append(error_output(*state["reason"]))
        return cell

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
