"""One budget per submission: memory and processes shared by all of a kernel's processes.

Per-process limits (prlimit) bound each process alone: a submission that forks twenty
children, each under the address-space limit, or that fills its private /tmp (a tmpfs, so
memory), could take many times its share. Where the machine lets the grader create control
groups, every kernel gets its own group with

* ``memory``: the memory limit, counted over all of the submission's processes and the files it
  writes to its tmpfs (the kernel writes tmpfs pages, so they are charged to its group);
* ``pids``: the process (and thread) limit, counted for this submission only;

and when the kernel ends every process still in its group is killed and the group removed.

Which control groups: cgroup v2 when the unified hierarchy has the ``memory`` and ``pids``
controllers enabled for the grader's own group's children; otherwise cgroup v1's ``memory`` and
``pids`` hierarchies when they are mounted and writable (as on Docker hosts that still run v1);
otherwise none: the documented fallback, where prlimit's per-process limits remain and each
kernel runs under a uid of its own, so the process limit still counts one submission only
(`sandbox.kernel_uid`). `python -m autograder doctor` says which applies on this machine.
"""

from __future__ import annotations

import os
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Hierarchies:
    """Where new groups go: one folder per controller (v1), or one folder for both (v2)."""

    version: int  # 1 or 2; 0 = none
    memory: Path | None = None
    pids: Path | None = None

    def describe(self) -> str:
        if self.version == 0:
            return ("no control groups: per-process limits (prlimit) and one uid per kernel; memory is "
                    "not summed over a submission's processes")
        return f"cgroup v{self.version}: memory {self.memory}, pids {self.pids}"


def _own_group(controller: str) -> str | None:
    """This process's group path in the hierarchy of `controller` ('' for the v2 unified one)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return None


def _writable_dir(path: Path) -> bool:
    probe = path / f"autograder-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
        probe.rmdir()
        return True
    except OSError:
        return False


def detect() -> Hierarchies:
    """The control groups this process may create for kernels (see module docstring)."""
    if os.environ.get("AUTOGRADER_NO_CGROUPS"):
        return Hierarchies(0)
    unified = CGROUP_ROOT / "cgroup.controllers"
    if unified.is_file():
        own = _own_group("")
        base = CGROUP_ROOT / (own or "/").lstrip("/")
        enabled = (base / "cgroup.subtree_control")
        try:
            controllers = set(enabled.read_text().split())
        except OSError:
            controllers = set()
        if {"memory", "pids"} <= controllers and _writable_dir(base):
            return Hierarchies(2, base, base)
    folders = {}
    for controller in ("memory", "pids"):
        mount = CGROUP_ROOT / controller
        own = _own_group(controller)
        if own is None or not (mount / "cgroup.procs").is_file():
            return Hierarchies(0)
        folder = mount / own.lstrip("/")
        if not _writable_dir(folder):
            return Hierarchies(0)
        folders[controller] = folder
    return Hierarchies(1, folders["memory"], folders["pids"])


_detected: list[Hierarchies] = []


def hierarchies() -> Hierarchies:
    if not _detected:
        _detected.append(detect())
    return _detected[0]


class SubmissionGroup:
    """The control group(s) of one kernel. `argv_prefix()` makes the launched command join them."""

    def __init__(self, memory_mb: int, processes: int, where: Hierarchies | None = None):
        self.where = where or hierarchies()
        self.name = f"autograder-{uuid.uuid4().hex[:12]}"
        self.folders: list[Path] = []
        if self.where.version == 0:
            return
        limit = str(memory_mb * 1024 * 1024)
        if self.where.version == 2:
            folder = self.where.memory / self.name
            folder.mkdir()
            self.folders = [folder]
            (folder / "memory.max").write_text(limit)
            (folder / "memory.swap.max").write_text("0") if (folder / "memory.swap.max").exists() else None
            (folder / "pids.max").write_text(str(processes))
        else:
            memory, pids = self.where.memory / self.name, self.where.pids / self.name
            memory.mkdir()
            pids.mkdir()
            self.folders = [memory, pids]
            (memory / "memory.limit_in_bytes").write_text(limit)
            (pids / "pids.max").write_text(str(processes))

    @property
    def active(self) -> bool:
        return bool(self.folders)

    def argv_prefix(self) -> list[str]:
        """A shell that moves itself into the group(s), then execs the real command."""
        if not self.folders:
            return []
        script = ('for g in "$@"; do [ "$g" = -- ] && break; echo $$ > "$g/cgroup.procs" || exit 97; '
                  'shift; done; shift; exec "$@"')
        return ["sh", "-c", script, "join", *map(str, self.folders), "--"]

    def ran_out_of_memory(self) -> bool:
        """Whether the memory limit made the kernel's processes fail or be killed."""
        if not self.folders:
            return False
        folder = self.folders[0]
        try:
            if self.where.version == 2:
                events = dict(line.split() for line in (folder / "memory.events").read_text().splitlines())
                return int(events.get("oom_kill", 0)) > 0 or int(events.get("max", 0)) > 0
            return int((folder / "memory.failcnt").read_text()) > 0
        except (OSError, ValueError):
            return False

    def pids(self) -> list[int]:
        found: set[int] = set()
        for folder in self.folders:
            try:
                found.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return sorted(found)

    def close(self) -> None:
        """Kill whatever is left in the group(s) and remove them: nothing of the kernel outlives it."""
        for _ in range(50):
            left = self.pids()
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            import time

            time.sleep(0.02)
        for folder in self.folders:
            try:
                folder.rmdir()
            except OSError:
                pass
        self.folders = []
