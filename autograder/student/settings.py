"""Where a copy of the course keeps what the student side needs: this repository, or the package.

The folders are found from this file: the student package has the same layout as the
repository (`exercises/` next to `autograder/`).
"""

from __future__ import annotations

from pathlib import Path

from traitlets.config.loader import PyFileConfigLoader

STUDENT_DIR = Path(__file__).resolve().parent
TOOL_DIR = STUDENT_DIR.parent                       # autograder/
REPO_ROOT = TOOL_DIR.parent                         # the copy of the course
EXERCISES = REPO_ROOT / "exercises"
# The settings Validate reads; the instructor's nbgrader configuration loads the same file.
VALIDATE_CONFIG = STUDENT_DIR / "validate_config.py"
LAB_CONFIG = STUDENT_DIR / "lab_config"             # the student Lab's JUPYTER_CONFIG_DIR


def validate_config():
    """The course's settings of Validate (VALIDATE_CONFIG) as a traitlets Config."""
    if not VALIDATE_CONFIG.is_file():
        raise FileNotFoundError(f"{VALIDATE_CONFIG} is missing: take a fresh copy of the course package")
    return PyFileConfigLoader(VALIDATE_CONFIG.name, path=str(VALIDATE_CONFIG.parent)).load_config()

