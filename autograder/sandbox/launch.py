"""Run student kernels inside a bubblewrap sandbox with resource limits.

`SandboxedKernelManager` is a drop-in jupyter_client kernel manager: nbgrader's
Execute preprocessor starts every kernel through it (see nbgrader_config.py), so
the same isolation applies to `python -m autograder grade` and to a plain
`nbgrader autograde` run with this course's config.

What the kernel sees:
  * read-only: the OS (/usr, /etc), the Python installation, the virtualenv and
    the course's own packages (vitcourse/, autograder/ minus the course folder);
  * read-write: a fresh scratch folder holding a copy of the submission's files
    (never the notebook, which carries the restored hidden tests) -- its cwd and $HOME;
  * a private /tmp, /proc and /dev; no network (own net namespace); own pid
    namespace (it cannot signal the grader); uid `nobody` when the grader is root;
  * prlimit: address space, CPU seconds, file size, open files (and processes
    when it runs as its own uid).

The kernel talks to the grader over ZeroMQ `ipc` (Unix sockets in a private
runtime folder bound into the sandbox): TCP would need the host network, and
Unix sockets also remove the port clashes of many kernels starting at once.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, CaselessStrEnum, Integer, List, Type, Unicode

from autograder.config.course import Course
from autograder.sandbox.budget import SubmissionGroup

SANDBOX_HOME = "/home/student"
NOBODY_UID = 65534
# Kernels of a grader running as root each get a uid of their own (no account needed), so the
# process limit (RLIMIT_NPROC counts every process of a uid) is one submission's, and no two
# kernels share files or signals. Two per grading process: the running one and the one ahead.
KERNEL_UID_BASE = 1_100_000
_kernels_started = [0]


def next_kernel_uid() -> int:
    """A uid no other live kernel on this host uses (see KERNEL_UID_BASE)."""
    _kernels_started[0] += 1
    return KERNEL_UID_BASE + (os.getpid() % 400_000) * 2 + _kernels_started[0] % 2
# Environment variables the kernel may see; everything else is cleared.
PASSED_ENV_PREFIXES = ("VITCOURSE_", "NBGRADER_", "LANG", "LC_")


def mount_scratch(folder: Path, size_mb: int) -> bool:
    """Make `folder` a tmpfs of `size_mb` (when the grader may mount, i.e. runs as root): the
    submission's files then have a disk budget of their own, and the pages it writes there count
    towards its memory budget too. Elsewhere the folder stays on the host's disk, bounded per file
    by prlimit only (documented fallback). True when mounted."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755,nosuid,nodev", "tmpfs",
                           str(folder)], capture_output=True)
    return done.returncode == 0


def unmount_below(folder: Path) -> None:
    """Lazily unmount every mount point inside `folder` (scratch tmpfs of kernels that died)."""
    prefix = str(Path(folder).resolve()) + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    points = [line.split()[4] for line in lines if len(line.split()) > 4]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True)


def run_dir(folder: str) -> str | None:
    """The grading run's own folder on the host (`SandboxedKernelManager.run_dir`, set by `grade`),
    which is removed when the run ends, so no kernel's files outlive it; else None: the system's
    temp folder."""
    return folder if folder and os.path.isdir(folder) else None


class SandboxUnavailableError(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here."""


@dataclass(frozen=True)
class ResourceLimits:
    """Per-kernel limits applied with prlimit (inherited by every child process)."""

    memory_mb: int = 4096
    cpu_seconds: int = 900
    file_size_mb: int = 256
    open_files: int = 1024
    processes: int = 512

    def prlimit_argv(self, *, limit_processes: bool) -> list[str]:
        mib = 1024 * 1024
        argv = [
            "prlimit",
            f"--as={self.memory_mb * mib}",
            f"--cpu={self.cpu_seconds}",
            f"--fsize={self.file_size_mb * mib}",
            f"--nofile={self.open_files}",
            "--core=0",
        ]
        # RLIMIT_NPROC counts every process of the real uid: only meaningful (and
        # only harmless) when the kernel runs under a uid of its own.
        if limit_processes:
            argv.append(f"--nproc={self.processes}")
        return argv + ["--"]


def _ancestors(path: Path) -> list[Path]:
    """Parents of `path` from the top down, excluding '/' and `path` itself."""
    return list(reversed(path.parents))[1:]


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def package_dirs() -> list[Path]:
    """Source folders of the course packages the kernel must import (found, not imported:
    importing vitcourse would import torch, seconds of start-up for nothing)."""
    dirs = []
    for name in ("vitcourse", "autograder"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs.append(Path(list(spec.submodule_search_locations)[0]).resolve())
    return dirs


def secret_dirs(hidden=()) -> list[Path]:
    """Folders hidden inside otherwise visible trees: the generated course (gradebook), and
    `hidden` (`SandboxedKernelManager.hidden_folders`: the course being graded, and on a Dask
    worker the folder of its private course copies)."""
    course = Course().root   # the default course folder (autograder/course/)
    return [course] + [Path(folder).resolve() for folder in hidden if folder]


@functools.cache
def course_data_dir() -> Path | None:
    """The grader's course data folder ($VITCOURSE_DATA or the user cache), if it exists.

    The kernel gets it read-only (and $VITCOURSE_DATA pointing at it): assignments that
    train on real data must see the same files as the grader's own checks.
    """
    # vitcourse.data.sources is stdlib-only; loading the file alone skips vitcourse/__init__
    # (which imports torch) while keeping its data_root() the one definition of the rule.
    packages = [p for p in package_dirs() if p.name == "vitcourse"]
    sources = packages[0] / "data" / "sources.py" if packages else None
    if sources is None or not sources.is_file():
        return None
    spec = importlib.util.spec_from_file_location("_vitcourse_data_sources", sources)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    root = module.data_root().resolve()
    return root if root.is_dir() else None


def read_only_dirs() -> list[Path]:
    """Host folders the kernel may read: Python, the virtualenv, the course packages and data."""
    data = course_data_dir()
    candidates = [Path(sys.base_prefix), Path(sys.prefix), *package_dirs(), *([data] if data else [])]
    unique: list[Path] = []
    for path in (p.resolve() for p in candidates):
        if not any(_is_within(path, kept) for kept in unique):
            unique = [kept for kept in unique if not _is_within(kept, path)] + [path]
    return unique


def bwrap_argv(scratch: Path, runtime: Path, env: dict[str, str], *, uid: int | None,
               tmp_mb: int = 1024, hidden=()) -> list[str]:
    """The bubblewrap command line that confines one kernel.

    scratch: host folder mounted read-write as the kernel's cwd and $HOME.
    runtime: host folder with the connection file and ipc sockets (same path inside).
    hidden: folders covered by an empty tmpfs where a visible tree holds them (see secret_dirs).
    """
    argv = ["bwrap", "--die-with-parent", "--new-session",
            "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    if os.geteuid() != 0:
        argv += ["--unshare-user", "--cap-drop", "ALL"]
    # Mount order matters: later mounts go on top, so the private /tmp comes first.
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(tmp_mb * 1024 * 1024),
             "--tmpfs", "/tmp",
             "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in ("bin", "lib", "lib64", "sbin"):
        top = Path("/") / name
        if top.is_symlink():
            argv += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            argv += ["--ro-bind", str(top), str(top)]
    made: set[Path] = set()
    secrets = secret_dirs(hidden)
    for folder in [*read_only_dirs(), runtime]:
        # bwrap creates missing parents as 0700; the kernel may run as nobody.
        for parent in _ancestors(folder):
            if parent not in made:
                made.add(parent)
                argv += ["--perms", "0755", "--dir", str(parent)]
        mode = "--bind" if folder == runtime else "--ro-bind"
        argv += [mode, str(folder), str(folder)]
        for secret in secrets:
            if secret.exists() and _is_within(secret, folder) and secret != folder:
                argv += ["--tmpfs", str(secret)]
    argv += ["--perms", "0755", "--dir", "/home",
             "--bind", str(scratch), SANDBOX_HOME, "--chdir", SANDBOX_HOME, "--clearenv"]
    for key, value in sorted(env.items()):
        argv += ["--setenv", key, value]
    argv.append("--")
    if uid is not None:
        argv += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all"]
    return argv


def kernel_env(threads: int) -> dict[str, str]:
    """The whole environment of a sandboxed kernel."""
    env = {
        "HOME": SANDBOX_HOME,
        "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "AUTOGRADER_SANDBOX": "bwrap",
    }
    env.update({k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV_PREFIXES)})
    data = course_data_dir()
    if data is not None:
        env["VITCOURSE_DATA"] = str(data)
    return env


def check_bwrap() -> str | None:
    """None when bubblewrap can build a sandbox here, else why not."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (Debian: apt-get install bubblewrap)"
    if shutil.which("prlimit") is None:
        return "prlimit is not installed (Debian: apt-get install util-linux)"
    with tempfile.TemporaryDirectory() as scratch, tempfile.TemporaryDirectory() as runtime:
        os.chmod(scratch, 0o777)
        argv = bwrap_argv(Path(scratch), Path(runtime), kernel_env(1),
                          uid=next_kernel_uid() if os.geteuid() == 0 else None)
        probe = subprocess.run(argv + [sys.executable, "-c", "import os; print(os.getcwd())"],
                               capture_output=True, text=True, timeout=60)
    if probe.returncode != 0 or probe.stdout.strip() != SANDBOX_HOME:
        return f"bubblewrap cannot create a sandbox here: {probe.stderr.strip() or probe.stdout.strip()}"
    return None


def _copy_submission_files(notebook_dir: Path, scratch: Path) -> None:
    """Copy the submission's data files (never notebooks) into the scratch folder."""
    sources = list(notebook_dir.rglob("*"))   # listed first: the scratch folder may lie inside notebook_dir
    for source in sources:
        relative = source.relative_to(notebook_dir)
        if source.suffix == ".ipynb" or ".ipynb_checkpoints" in relative.parts or source.is_symlink():
            continue
        if _is_within(source, scratch) or _is_within(scratch, source):
            continue                           # never copy the scratch folder into itself
        target = scratch / relative
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


class SandboxedKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernels run confined (see module docstring)."""

    # autograder/sandbox/kernel_client.py: wait_for_ready without jupyter_client's fixed 0.2 s pause.
    client_class = Unicode("autograder.sandbox.kernel_client.QuickReadyClient")
    client_factory = Type(default_value="autograder.sandbox.kernel_client.QuickReadyClient",
                          klass="jupyter_client.asynchronous.AsyncKernelClient")

    sandbox = CaselessStrEnum(
        ["bwrap", "none"], default_value="bwrap",
        help="'bwrap': bubblewrap namespaces + prlimit. 'none': prlimit only, no file or "
             "network isolation -- the documented fallback where bubblewrap cannot run.",
    ).tag(config=True)
    memory_limit_mb = Integer(4096, help="Address-space limit of the kernel (MiB).").tag(config=True)
    cpu_limit_s = Integer(900, help="CPU-seconds limit of the kernel process.").tag(config=True)
    file_size_limit_mb = Integer(256, help="Largest file the kernel may write (MiB).").tag(config=True)
    drop_privileges = Bool(True, help="When the grader runs as root, run kernels as nobody.").tag(config=True)
    # One thread by default: on a machine busy with other work, torch's multi-threaded kernels
    # spin and collapse (6x slower measured on 2 shared cores), and spinning threads burn the
    # CPU-seconds a notebook is limited by. Batches use the cores through parallel workers.
    threads = Integer(1, help="Math-library threads per kernel; 0 = CPU cores / "
                              "kernels_per_host.").tag(config=True)
    # The grading run's own settings, passed by `grade` in the config it gives every executor.
    kernels_per_host = Integer(1, help="Kernels that run at once on this machine (threads = 0 shares "
                                       "the cores among them).").tag(config=True)
    hidden_folders = List(Unicode(), [], help="Host folders no kernel may see: the course being graded "
                                              "(and a Dask worker's private courses).").tag(config=True)
    run_dir = Unicode("", help="The grading run's folder on the host, removed when the run ends: kernels' "
                               "scratch and runtime folders go there ('': the system's temp folder)."
                      ).tag(config=True)
    boot_modules = List(Unicode(), [],
                        help="Imported in the kernel before any cell runs (saves time only: "
                             "tests never run in the kernel).").tag(config=True)

    scratch_limit_mb = Integer(1024, help="Size of the kernel's home folder, where it may write files "
                                          "(a tmpfs of its own when the grader may mount one).").tag(config=True)
    _scratch_mounted = False
    tmp_limit_mb = Integer(1024, help="Size of the kernel's private /tmp (a tmpfs: its pages also "
                                      "count towards the memory budget).").tag(config=True)

    _scratch: Path | None = None
    _runtime: Path | None = None
    _group: SubmissionGroup | None = None
    kernel_uid: int | None = None
    # Set on a kernel started ahead of its submission (autograder.execute's spare kernel): it
    # starts with an empty scratch folder and gets the files from receive_submission().
    started_ahead = False

    def _limits(self) -> ResourceLimits:
        return ResourceLimits(memory_mb=self.memory_limit_mb, cpu_seconds=self.cpu_limit_s,
                              file_size_mb=self.file_size_limit_mb)

    def _threads(self) -> int:
        if self.threads > 0:
            return self.threads
        return max(1, (os.cpu_count() or 1) // max(1, self.kernels_per_host))

    async def _async_pre_start_kernel(self, **kw):
        # A private runtime folder: connection file and ipc sockets live there.
        self._runtime = Path(tempfile.mkdtemp(prefix="autograder-kernel-", dir=run_dir(self.run_dir)))
        os.chmod(self._runtime, 0o755)
        self.transport = "ipc"
        self.ip = str(self._runtime / "ipc")
        self.connection_file = str(self._runtime / "connection.json")
        return await super()._async_pre_start_kernel(**kw)

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        boot = ";".join(f"import {name}" for name in self.boot_modules)
        return cmd + ([f"--IPKernelApp.exec_lines={boot}"] if boot else [])

    def _give_scratch_to_kernel_user(self) -> None:
        if self.kernel_uid is not None:
            for path in [self._scratch, *self._scratch.rglob("*")]:
                os.chown(path, self.kernel_uid, self.kernel_uid)

    def receive_submission(self, notebook_dir: Path) -> None:
        """Copy a submission's files into the scratch folder of a kernel started ahead of it.

        The scratch folder is bind-mounted, so the running kernel sees them at once.
        """
        if not self.started_ahead or self._scratch is None:
            raise RuntimeError("receive_submission is for a running kernel started ahead of its submission")
        _copy_submission_files(Path(notebook_dir), self._scratch)
        self._give_scratch_to_kernel_user()

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        drop = self.drop_privileges and os.geteuid() == 0
        self.kernel_uid = next_kernel_uid() if drop else None
        notebook_dir = Path(kw.get("cwd") or os.getcwd())
        self._scratch = Path(tempfile.mkdtemp(prefix="autograder-scratch-", dir=run_dir(self.run_dir)))
        self._scratch_mounted = mount_scratch(self._scratch, self.scratch_limit_mb)
        if self.started_ahead:
            kw["cwd"] = str(self._scratch)   # no submission yet: receive_submission() brings its files
        else:
            _copy_submission_files(notebook_dir, self._scratch)
        self._give_scratch_to_kernel_user()
        if drop:
            os.chmod(self._runtime / "connection.json", 0o644)
            os.chown(self._runtime, self.kernel_uid, self.kernel_uid)
        # The kernel's own stdout/stderr (not cell output) would flood the grader's log.
        kw["stdout"] = kw["stderr"] = subprocess.DEVNULL
        limits = self._limits().prlimit_argv(limit_processes=drop)
        env = kernel_env(self._threads())
        # One memory and process budget for all of the submission's processes (budget.py).
        self._group = SubmissionGroup(self.memory_limit_mb, ResourceLimits.processes)
        joins = self._group.argv_prefix()
        if self.sandbox == "bwrap":
            confined = bwrap_argv(self._scratch, self._runtime, env, uid=self.kernel_uid,
                                  tmp_mb=self.tmp_limit_mb, hidden=self.hidden_folders)
            wrapped = joins + limits + confined + kernel_cmd
        else:
            wrapped = joins + limits + kernel_cmd
            kw["cwd"] = str(self._scratch)
            kw["env"] = {**env, "HOME": str(self._scratch), "AUTOGRADER_SANDBOX": "none"}
        self.log.debug("Sandboxed kernel command: %s", wrapped)
        await super()._async_launch_kernel(wrapped, **kw)

    @property
    def kernel_spec(self):
        spec = super().kernel_spec
        # SIGINT would reach bwrap, not the kernel: interrupt over the control channel.
        if spec is not None and self.sandbox == "bwrap":
            spec.interrupt_mode = "message"
        return spec

    async def _async_wait(self, pollinterval: float = 0.01) -> None:
        # jupyter_client polls a dying kernel every 0.1 s; a grader kills one per submission.
        await super()._async_wait(pollinterval=pollinterval)

    def ran_out_of_memory(self) -> bool:
        """Whether the submission's memory budget was exhausted (only known with control groups)."""
        return self._group is not None and self._group.ran_out_of_memory()

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if self._group is not None:
            self._group.close()
        if self._scratch is not None and self._scratch_mounted:
            subprocess.run(["umount", "--lazy", str(self._scratch)], capture_output=True)
        for folder in (self._scratch, self._runtime):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        self._scratch = self._runtime = None
