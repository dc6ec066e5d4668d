"""One budget per submission (autograder/sandbox/budget.py): memory and processes over all its processes.

These run real processes in real control groups, so they need a machine where the grader may
create them (root with cgroup v2 controllers delegated, or cgroup v1 mounted): the CI machine
is one. `test_this_machine_says_which_budget_applies` documents what was found.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from autograder.sandbox import budget
from autograder.sandbox.launch import KERNEL_UID_BASE, next_kernel_uid

WHERE = budget.hierarchies()
needs_cgroups = pytest.mark.skipif(WHERE.version == 0, reason=f"this machine: {WHERE.describe()}")


def test_this_machine_says_which_budget_applies():
    text = WHERE.describe()
    assert ("cgroup v" in text) == (WHERE.version in (1, 2))
    if WHERE.version:
        assert WHERE.memory.is_dir() and WHERE.pids.is_dir()


def test_kernels_get_uids_of_their_own():
    first, second = next_kernel_uid(), next_kernel_uid()
    assert first != second and min(first, second) >= KERNEL_UID_BASE


def _run_in(group, code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(group.argv_prefix() + [sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=timeout)


@needs_cgroups
def test_processes_are_counted_for_the_submission_and_killed_with_it():
    group = budget.SubmissionGroup(memory_mb=512, processes=20)
    try:
        done = _run_in(group, """
import os, time
children = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.close(1)
        os.close(2)
        time.sleep(300)
        os._exit(0)
    children += 1
print(children)
""")
        assert done.returncode == 0, done.stderr
        assert 10 <= int(done.stdout) < 20          # stopped at the group's limit, not the host's
        assert len(group.pids()) >= 10              # the sleeping children outlived their parent...
    finally:
        group.close()
    assert group.pids() == [] and not group.folders  # ...until the group was closed


@needs_cgroups
def test_memory_is_summed_over_the_submissions_processes():
    group = budget.SubmissionGroup(memory_mb=300, processes=64)
    try:
        # Four children of 120 MB each: every one is under any per-process limit, together over.
        done = _run_in(group, """
import os, time
pids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        block = bytearray(120 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(5)
        os._exit(0)
    pids.append(pid)
codes = [os.waitpid(pid, 0)[1] for pid in pids]
print(sum(1 for code in codes if code != 0))
""")
        assert int(done.stdout.strip() or 4) >= 1   # at least one child was stopped
        assert group.ran_out_of_memory()
    finally:
        group.close()


@needs_cgroups
def test_files_in_a_private_tmpfs_count_as_memory():
    group = budget.SubmissionGroup(memory_mb=200, processes=64)
    try:
        done = subprocess.run(group.argv_prefix() + [
            "unshare", "--mount", "--", sys.executable, "-c", """
import subprocess
subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', '/mnt'], check=True)
written = 0
try:
    with open('/mnt/fill', 'wb') as handle:
        for _ in range(400):
            handle.write(b'x' * 1024 * 1024)
            handle.flush()
            written += 1
except OSError:
    pass
print(written)
"""], capture_output=True, text=True, timeout=60)
        written = int(done.stdout.strip()) if done.stdout.strip() else 0
        assert written < 400 and (group.ran_out_of_memory() or done.returncode != 0)
    finally:
        group.close()
    time.sleep(0.1)
