"""CI's whole run on a fresh clone, timed: idle, and beside one CPU hog per core.

Each row clones this repository's HEAD into a folder beside it (so that ../shared resolves as it
does in CI), runs `bash .ci/run` there exactly as CI does (set-up, book, every test), and keeps
the log beside the clone. Prints each row's minutes, its exit code and the targets of issue 29:

    fresh-clone `bash .ci/run` <= 25 min idle and <= 50 min beside a CPU hog per core.

    python bench/ci_time.py [--rows idle,hog] [--json OUT] [--keep]

A row takes 25-50 minutes. Timings mean something only on a machine nobody else is using: work
of your own beside the hog row makes it slower, so a met target stays met.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT / "bench")]

from load_rows import parse_rows, under_each_load  # noqa: E402

TARGETS = {"idle": 25 * 60, "hog": 50 * 60}  # seconds, per row
FINISHED = re.compile(r"^CI: finished in (\d+) min (\d+) s \(exit code (\d+)\)$", re.M)


def ci_run(row: str, keep: bool) -> dict:
    """Clone HEAD beside this checkout, run CI there; its seconds, exit code, and log path."""
    clone = REPO_ROOT.parent / f"ci-time-{row}"
    log = REPO_ROOT.parent / f"ci-time-{row}.log"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=True).stdout.strip()
    start = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(["bash", ".ci/run"], cwd=clone, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - start
    text = log.read_text(errors="replace")
    match = FINISHED.search(text)
    reported = int(match[1]) * 60 + int(match[2]) if match else None
    if not keep:
        shutil.rmtree(clone, ignore_errors=True)
    return {"commit": commit, "seconds": round(seconds, 1), "ci_reported_seconds": reported,
            "exit_code": code, "log": str(log)}


def verdicts(rows: dict[str, dict]) -> list[str]:
    lines = []
    for row, measured in rows.items():
        limit = TARGETS[row]
        met = measured["exit_code"] == 0 and measured["seconds"] <= limit
        lines.append(f"{row:>4}: {measured['seconds'] / 60:5.1f} min, exit {measured['exit_code']}; "
                     f"target <= {limit // 60} min and exit 0: {'met' if met else 'MISSED'}")
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="idle,hog", help="comma-separated rows to measure: idle, hog")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    parser.add_argument("--keep", action="store_true", help="keep the clones (default: remove them)")
    args = parser.parse_args(argv)
    args.rows = parse_rows(parser, args.rows)
    if not (REPO_ROOT.parent / "shared").is_dir():
        parser.error(f"no {REPO_ROOT.parent / 'shared'}: CI needs ../shared beside the clone, as in CI")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    rows = {}
    for row in under_each_load(args.rows, "ci_time", "fresh-clone CI"):
        rows[row] = ci_run(row, args.keep)
        print(f"[ci_time] {row}: {rows[row]['seconds']:.0f} s, log {rows[row]['log']}", flush=True)
    print("\n".join(verdicts(rows)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(measured["exit_code"] == 0 for measured in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
