"""`validate`: the student-side check, nbgrader's Validate from the command line.

Runs the notebook top to bottom (no sandbox: it is the student's own machine) and
reports changed read-only cells, or else the visible tests that fail.
"""

from __future__ import annotations

from pathlib import Path


def validate_notebook(path: Path) -> dict:
    """nbgrader's validation results: keys 'type_changed', 'changed', 'failed' when present."""
    from nbgrader.validator import Validator

    if not path.is_file() or path.suffix != ".ipynb":
        raise FileNotFoundError(f"{path} is not a notebook file (.ipynb)")
    return Validator().validate(str(path.resolve()))


def describe(results: dict) -> list[str]:
    """Human-readable lines for validation results."""
    if results.get("type_changed"):
        return [f"{len(results['type_changed'])} cell(s) changed type; restore them from exercises/:"] + [
            f"  {cell['old_type']} -> {cell['new_type']}: {cell['source'][:80]!r}" for cell in results["type_changed"]]
    if results.get("changed"):
        return [f"{len(results['changed'])} read-only cell(s) were edited (they are restored when graded):"] + [
            f"  {cell['source'][:80]!r}" for cell in results["changed"]]
    if results.get("failed"):
        lines = [f"{len(results['failed'])} test cell(s) fail:"]
        for cell in results["failed"]:
            error = cell["raw_error"].strip().splitlines()
            lines.append(f"  {cell['source'].splitlines()[0][:80]!r} -> {error[-1] if error else 'error'}")
        return lines
    return ["Success! All visible tests pass (hidden tests run only when the assignment is graded)."]
