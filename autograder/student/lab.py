"""JupyterLab for students (`make lab`) and Formgrader for instructors (`make formgrader`).

Each runs `jupyter lab` with a configuration folder of this course (PROFILE_CONFIG: the student's
autograder/student/lab_config/, the instructor's autograder/config/lab_instructor/):

* student: the assignments in exercises/; of nbgrader only the Validate button, answered by
  the handler below, which runs `python -m autograder validate` (the course's limits and
  threads) in a subprocess, so the server keeps answering while a notebook validates;
  the Assignment List, Course List and Formgrader panels, which need an nbgrader exchange or
  a gradebook, are switched off; locked cells are marked (custom/custom.css).
* instructor: Formgrader on the course folder (autograder/course/ by default), for manual
  grading of the written answers; opens at /formgrader.

Lab's settings, workspaces, runtime files and the notebooks' checkpoints go to .lab-state/ in
the copy of the course it runs from (the student package's folder, or this repository), so two
copies never share open tabs or checkpoints; the folder ignores itself in git (its .gitignore).
`VITCOURSE_LAB_STATE` moves it (tests).

This module is also the student Lab's server extension (`autograder.student.lab`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from pathlib import Path

from autograder.student.settings import LAB_CONFIG, REPO_ROOT, TOOL_DIR

# Each profile's JUPYTER_CONFIG_DIR; the instructor's is not in the student package.
PROFILE_CONFIG = {"student": LAB_CONFIG, "instructor": TOOL_DIR / "config" / "lab_instructor"}
PROFILES = tuple(PROFILE_CONFIG)
STATE_DIR = REPO_ROOT / ".lab-state"


def state_dir(profile: str) -> Path:
    """Where Lab keeps settings, workspaces, runtime files and checkpoints: STATE_DIR/`profile`,
    inside this copy of the course (or under $VITCOURSE_LAB_STATE)."""
    top = Path(os.environ.get("VITCOURSE_LAB_STATE") or STATE_DIR)
    folder = top / profile
    folder.mkdir(parents=True, exist_ok=True)
    ignore = top / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# JupyterLab's state for this copy of the course (autograder/student/lab.py)\n*\n")
    return folder


def lab_command(profile: str, root: Path, *, port: int | None = None, browser: bool = True,
                extra: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) that start JupyterLab with the course's `profile` configuration on `root`."""
    if profile not in PROFILES:
        raise ValueError(f"unknown Lab profile {profile!r}: use one of {', '.join(PROFILES)}")
    root = Path(root).resolve()
    if not root.is_dir():
        hint = ("run `python -m autograder release --all`" if profile == "student"
                else "release an assignment and collect submissions first (autograder/README.md)")
        raise FileNotFoundError(f"{root} does not exist: {hint}")
    state = state_dir(profile)
    env = {**os.environ,
           "JUPYTER_CONFIG_DIR": str(PROFILE_CONFIG[profile]),
           "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(state / "user-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
           "VITCOURSE_LAB_CHECKPOINTS": str(state / "checkpoints"),
           # The Validate subprocess and the kernels import this checkout's packages.
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}"]
    if port is not None:
        argv.append(f"--ServerApp.port={port}")
    if not browser:
        argv.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")  # containers; Jupyter refuses root otherwise
    if profile == "instructor":
        argv.append("--ServerApp.default_url=/formgrader")
    return argv + list(extra or []), env


def run_lab(profile: str, root: Path, extra: list[str] | None = None) -> int:
    """Start JupyterLab in the foreground (Ctrl-C stops it). The instructor's `formgrader` command
    makes the course folder (with its nbgrader_config.py, which Formgrader reads) first."""
    import subprocess

    argv, env = lab_command(profile, root, extra=extra)
    return subprocess.call(argv, env=env, cwd=str(root))


@functools.cache
def checkpoints_class():
    """The Lab's checkpoints class (the configurations name it `autograder.student.lab.CourseCheckpoints`)."""
    from jupyter_server.services.contents.filecheckpoints import AsyncFileCheckpoints

    class CourseCheckpoints(AsyncFileCheckpoints):
        """jupyter_server's checkpoints under `root_dir` (the Lab's state folder), whose folder for
        each notebook folder is made when needed: jupyter_server's own class puts the checkpoints of
        a folder it does not find in the system's temporary folder, shared by every copy of the course."""

        def checkpoint_path(self, checkpoint_id, path):
            parent = ("/" + path.strip("/")).rsplit("/", 1)[0].strip("/")
            os.makedirs(self._get_os_path(path=parent), exist_ok=True)
            return super().checkpoint_path(checkpoint_id, path)

    return CourseCheckpoints


def __getattr__(name):
    """`autograder.student.lab.CourseCheckpoints`, made on first use (jupyter_server is imported then)."""
    if name == "CourseCheckpoints":
        return checkpoints_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---- the student Lab's server extension: nbgrader's Validate, asynchronous ---------------------

def _jupyter_server_extension_points():
    return [{"module": "autograder.student.lab"}]


def _load_jupyter_server_extension(serverapp):
    from jupyter_server.base.handlers import JupyterHandler
    from jupyter_server.utils import url_path_join
    from tornado import web

    class ValidateHandler(JupyterHandler):
        """POST assignments/validate: what nbgrader's Lab button calls, in nbgrader's format."""

        @web.authenticated
        async def post(self):
            path = self.get_argument("path", None) or (self.get_json_body() or {}).get("path")
            root = Path(self.settings["server_root_dir"]).resolve()
            target = (root / (path or "")).resolve()
            if not path or not target.is_relative_to(root):
                raise web.HTTPError(403, "the notebook must lie inside the Lab's folder")
            self.finish(json.dumps(await validate_in_subprocess(target)))

    class VersionHandler(JupyterHandler):
        @web.authenticated
        def get(self):
            from nbgrader import __version__

            ui = self.get_argument("version", "")
            self.finish(json.dumps({"success": True} if ui == __version__ else {
                "success": False, "message": f"nbgrader's Lab extension is {ui}, the server's {__version__}: "
                                            "reinstall the course's environment (make setup)"}))

    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", [(url_path_join(base, "assignments/validate"), ValidateHandler),
                                           (url_path_join(base, "nbgrader_version"), VersionHandler)])
    serverapp.log.info("autograder.student.lab: Validate runs `python -m autograder validate` "
                       "with the course's limits")


async def validate_in_subprocess(notebook: Path) -> dict:
    """nbgrader's {'success', 'value'} answer for the Lab, from `python -m autograder validate --json`."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "autograder", "validate", "--json", str(notebook),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(REPO_ROOT))
    out, err = await process.communicate()
    lines = out.decode(errors="replace").strip().splitlines()
    if process.returncode in (0, 1) and lines:
        try:
            return {"success": True, "value": json.loads(lines[-1])["lab_value"]}
        except (ValueError, KeyError):
            pass
    return {"success": False,
            "value": (err.decode(errors="replace").strip() or "\n".join(lines))[-4000:] or
                     f"python -m autograder validate exited with code {process.returncode}"}
