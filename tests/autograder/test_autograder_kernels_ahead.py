"""Kernels started ahead (batch grading): the next notebook's sandboxed kernel boots while the
current one runs, then serves exactly that next notebook and sees only that submission's files."""

from __future__ import annotations

from pathlib import Path

import pytest
from nbclient.util import run_sync
from nbformat.v4 import new_code_cell, new_notebook

from autograder.sandbox import execute
from autograder.sandbox.execute import GuardedExecute, expect_more_notebooks
from autograder.sandbox.launch import check_bwrap

pytestmark = pytest.mark.skipif(check_bwrap() is not None, reason=f"no bubblewrap sandbox here: {check_bwrap()}")

# (IPython keeps its profile in ~/.ipython, which is the scratch folder: not a submission file.)
SHOW_FILES = "import os\nprint(sorted(f for f in os.listdir('.') if f != '.ipython'), open('answer.txt').read())"


@pytest.fixture(autouse=True)
def no_spare_left():
    execute._shutdown_spare()
    yield
    expect_more_notebooks(False)
    execute._shutdown_spare()


def _submission(tmp_path: Path, name: str, answer: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "answer.txt").write_text(answer)
    return folder


def _run(folder: Path, *cells: str, locked: str | None = None) -> list[str]:
    """Execute a notebook from `folder` with GuardedExecute; return each cell's printed text."""
    nb = new_notebook(cells=[new_code_cell(source) for source in cells])
    if locked is not None:
        nb.cells.insert(0, new_code_cell(locked, metadata={"nbgrader": {
            "locked": True, "grade": False, "solution": False, "grade_id": "setup", "schema_version": 3}}))
    executed, _ = GuardedExecute(start_kernels_ahead=True).preprocess(nb, {"metadata": {"path": str(folder)}})
    return ["".join(o.get("text", "") for o in cell.outputs) for cell in executed.cells]


def test_the_next_notebook_runs_in_the_kernel_started_ahead_with_only_its_own_files(tmp_path):
    first, second = _submission(tmp_path, "alice", "A"), _submission(tmp_path, "bob", "B")
    expect_more_notebooks(True)
    assert _run(first, SHOW_FILES) == ["['answer.txt'] A\n"]
    spare = execute._spare["km"]
    assert spare.started_ahead and run_sync(spare.is_alive)()
    assert [p.name for p in spare._scratch.iterdir() if p.name != ".ipython"] == []   # no submission yet

    expect_more_notebooks(False)                          # bob is the last: start nothing after him
    assert _run(second, SHOW_FILES) == ["['answer.txt'] B\n"]
    assert not run_sync(spare.is_alive)()                # it served bob's notebook and was shut down
    assert spare._scratch is None                         # and its folders were removed
    assert "km" not in execute._spare


def test_no_kernel_is_started_ahead_unless_another_notebook_follows(tmp_path):
    expect_more_notebooks(False)
    assert _run(_submission(tmp_path, "alice", "A"), "print(6 * 7)") == ["42\n"]
    assert "km" not in execute._spare


def test_a_kernel_started_for_another_kind_of_notebook_is_killed_not_used(tmp_path):
    expect_more_notebooks(True)
    _run(_submission(tmp_path, "alice", "A"), "print(1)")
    spare = execute._spare["km"]
    # This notebook's locked cells import torch, so its kernel must boot torch first: another key.
    outputs = _run(_submission(tmp_path, "bob", "B"), "print(torch.ones(2).sum().item())",
                   locked="import torch")
    assert outputs == ["", "2.0\n"]
    assert not run_sync(spare.is_alive)()
    assert execute._spare["km"] is not spare and execute._spare["key"][1][0] == "torch"


def _sandboxed_kernel(tmp_path: Path, boot_modules: list[str], *arguments: str):
    from autograder.sandbox.launch import SandboxedKernelManager

    km = SandboxedKernelManager(boot_modules=boot_modules)
    run_sync(km.start_kernel)(cwd=str(tmp_path),
                              extra_arguments=["--HistoryManager.hist_file=:memory:", *arguments])
    return km


def test_quick_ready_client_waits_for_a_slow_kernel_and_leaves_no_start_up_output(tmp_path):
    from autograder.sandbox.kernel_client import QuickReadyClient

    km = _sandboxed_kernel(tmp_path, ["torch", "autograder.checks"])   # seconds to boot: requests repeat
    kc = km.client()
    try:
        assert isinstance(kc, QuickReadyClient)
        kc.start_channels()
        run_sync(kc.wait_for_ready)(timeout=120)
        printed = []

        def keep(msg):
            if msg["msg_type"] == "stream":
                printed.append(msg["content"]["text"])
        reply = run_sync(kc.execute_interactive)("print(6 * 7)", output_hook=keep, timeout=60)
        assert reply["content"]["status"] == "ok" and printed == ["42\n"]
    finally:
        kc.stop_channels()
        run_sync(km.shutdown_kernel)(now=True)


def test_quick_ready_client_says_when_the_kernel_is_dead(tmp_path):
    # A kernel that exits while starting, before it can reply. (Killing the sandbox from
    # outside is no test of this: killed in the instant after it starts, before bubblewrap's
    # --die-with-parent is armed, its kernel lives on and replies -- seen on a busy machine.)
    km = _sandboxed_kernel(tmp_path, [], "--IPKernelApp.kernel_class=no_such_module.Kernel")
    kc = km.client()
    try:
        kc.start_channels()
        with pytest.raises(RuntimeError, match="Kernel died before replying"):
            run_sync(kc.wait_for_ready)(timeout=30)
    finally:
        kc.stop_channels()
        run_sync(km.shutdown_kernel)(now=True)
