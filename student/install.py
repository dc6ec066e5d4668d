"""Set up this folder's Python environment for the course (`make setup` runs this).

    python3 install.py [--venv .venv] [--torch auto|cpu|cuda]

1. Checks this Python against the course's `requires-python` (pyproject.toml) before it
   installs anything, and says which command to run instead (naming the newer Pythons it finds).
2. Keeps a working .venv/; rebuilds one that is broken (its Python no longer runs, no pip)
   or made with an unsupported Python; never deletes a folder that is not a virtual environment.
3. Announces the download (size, time) and lets pip show its progress.
4. On Linux, installs PyTorch's CPU-only build (about 0.2 GB, from PyTorch's CPU wheel index)
   unless an NVIDIA GPU is found or TORCH=cuda is asked for: PyPI's Linux build brings NVIDIA's
   CUDA libraries (about 3.5 GB). On macOS and Windows PyPI's build is small and is used.
5. Writes .venv/.installed only when everything installed: a run that stopped half way
   (network, disk) continues on the next run; a run with nothing to do prints nothing.

Written for any Python, even an old one, so that an old one gets the message and not a crash.
VITCOURSE_SETUP_FAKE_PIP (tests only): an executable run with pip's arguments instead of pip.
"""

from __future__ import print_function

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PYPROJECT = os.path.join(HERE, "pyproject.toml")
STAMP = ".installed"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
FAKE_PIP = "VITCOURSE_SETUP_FAKE_PIP"
NEWEST_MINOR = 20  # how far up `python3.N` is looked for on PATH
# What a student downloads, by PyTorch build (approximate; the rest is NumPy, pandas, JupyterLab, ...).
DOWNLOAD = {"cpu": ("about 0.4 GB (PyTorch's CPU-only build: 0.2 GB)", "about 1.5 GB"),
            "cuda": ("about 3.5 GB (PyTorch 0.5 GB, NVIDIA's CUDA libraries about 2.5 GB)", "over 6 GB"),
            "pypi": ("about 0.4 GB (PyTorch: 0.1 GB)", "about 1.5 GB")}
# Extra pip output students need not see: setuptools' banner about editable installs.
QUIET_WARNINGS = "ignore:Editable installation"


class SetupError(Exception):
    """A problem the student can fix; the message says how."""


def say(text=""):
    """Print at once (pip's output follows in the same terminal)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def version_text(info):
    return ".".join(str(part) for part in tuple(info)[:3])


def project():
    """(minimum Python as (major, minor), the torch pin) from pyproject.toml."""
    with open(PYPROJECT) as handle:
        text = handle.read()
    minimum = re.search(r'requires-python\s*=\s*">=\s*(\d+)\.(\d+)', text)
    torch = re.search(r'"torch==([^"]+)"', text)
    if not minimum or not torch:
        raise SetupError("{} names no requires-python or torch pin: download the course package "
                         "again".format(PYPROJECT))
    return (int(minimum.group(1)), int(minimum.group(2))), torch.group(1)


def which(name):
    """The path of program `name` on PATH, or None (shutil.which is missing on old Pythons)."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(folder, name)
        if folder and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def newer_pythons(minimum):
    """The `python3.N` programs on PATH with N >= the minimum, newest first."""
    names = ["python{}.{}".format(minimum[0], minor) for minor in range(NEWEST_MINOR, minimum[1] - 1, -1)]
    return [name for name in names if which(name)]


def command(via_make, python):
    """The command that sets up with `python`: as `make` or as this script."""
    return "make setup PYTHON={}".format(python) if via_make else "{} install.py".format(python)


def refusal(minimum, via_make):
    """What to say to an unsupported Python: what it is, what is needed, the command to run."""
    need = "{}.{}".format(*minimum)
    lines = ["This is Python {} ({}); the course's packages (NumPy, pandas, matplotlib, Pillow, nbgrader "
             "at the course's versions) need Python {} or newer. Nothing was installed.".format(
                 version_text(sys.version_info), sys.executable, need)]
    found = newer_pythons(minimum)
    if found:
        lines += ["{} is on this machine: run".format(found[0]), "", "    " + command(via_make, found[0]), ""]
    else:
        lines += ["Install Python {} or newer, then run `{}` (with the version you installed):".format(
                      need, command(via_make, "python" + need)),
                  "  Ubuntu 24.04 / Debian 12: sudo apt install python3 python3-venv (3.12 / 3.11)",
                  "  Ubuntu 22.04: sudo add-apt-repository ppa:deadsnakes/ppa && "
                  "sudo apt install python3.12 python3.12-venv",
                  "  macOS: brew install python@3.12, or the installer from python.org",
                  "  Windows: the installer from python.org; then, without make: py -3.12 install.py",
                  "  conda: conda create -n py312 python=3.12 && conda activate py312, then `{}`".format(
                      command(via_make, "python"))]
    return "\n".join(lines)


def venv_python(venv):
    if os.name == "nt":
        return os.path.join(venv, "Scripts", "python.exe")
    return os.path.join(venv, "bin", "python")


def run_quietly(argv):
    """(exit code, output) of a short command; (None, why) when it cannot start."""
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as error:
        return None, str(error)
    out = process.communicate()[0]
    return process.returncode, out.decode("utf-8", "replace").strip()


def pip_argv(venv):
    """How pip of the environment is run (VITCOURSE_SETUP_FAKE_PIP replaces it in tests)."""
    fake = os.environ.get(FAKE_PIP)
    return [fake] if fake else [venv_python(venv), "-m", "pip"]


def inspect_venv(venv, minimum):
    """('missing' | 'ok' | 'rebuild', detail): what the folder `venv` holds."""
    if not os.path.lexists(venv):
        return "missing", ""
    if not os.path.isfile(os.path.join(venv, "pyvenv.cfg")):
        raise SetupError("{} exists but is not a Python virtual environment (it has no pyvenv.cfg), "
                         "so it was left alone. Move it away, or choose another folder "
                         "(make setup VENV=.venv-course), "
                         "then run make setup again.".format(venv))
    code, out = run_quietly([venv_python(venv), "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
    if code != 0 or not re.match(r"^\d+\.\d+\.\d+$", out):
        return "rebuild", "its Python does not run ({})".format(out.splitlines()[-1] if out else "no output")
    version = tuple(int(part) for part in out.split("."))
    if version[:2] < minimum:
        return "rebuild", "it was made with Python {}, and the course needs {}.{} or newer".format(
            out, *minimum)
    return "ok", out


def pip_problem(venv):
    """Why pip of the environment does not run, or None when it does."""
    code, out = run_quietly(pip_argv(venv) + ["--version"])
    if code == 0:
        return None
    return "it has no working pip ({})".format(out.splitlines()[-1] if out else "no output")


def read_stamp(venv):
    try:
        with open(os.path.join(venv, STAMP)) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return {}


def has_nvidia_gpu():
    """Whether this Linux machine shows an NVIDIA driver (nvidia-smi, or the driver's /proc entry)."""
    return bool(which("nvidia-smi") or os.path.exists("/proc/driver/nvidia/version")
                or os.path.exists("/usr/lib/wsl/lib/nvidia-smi"))


def torch_build(asked, stamp, system):
    """'cpu' | 'cuda' (Linux) or 'pypi' (elsewhere): which PyTorch build to install."""
    if system != "Linux":
        if asked in ("cpu", "cuda"):
            say("TORCH={}: on {} PyPI's PyTorch is the only build this set-up installs "
                "(CPU; Apple GPUs on macOS).".format(asked, system))
        return "pypi"
    if asked in ("cpu", "cuda"):
        return asked
    if stamp.get("torch") in ("cpu", "cuda"):
        return stamp["torch"]  # keep what was chosen before
    return "cuda" if has_nvidia_gpu() else "cpu"


def announce(build, torch_pin, python):
    """What is about to be downloaded, how long it takes, and the other PyTorch build."""
    say("Installing the course's packages with Python {}: {} to download, {} on disk.".format(
        python, *DOWNLOAD[build]))
    say("This takes a few minutes on a fast connection; pip shows each download with its size and progress.")
    if build == "cpu":
        say("PyTorch {}: the CPU-only build ({}), enough for every assignment. On a machine with an NVIDIA "
            "GPU you may want the CUDA build instead: make setup TORCH=cuda".format(torch_pin, CPU_INDEX))
    elif build == "cuda":
        say("PyTorch {}: PyPI's build with NVIDIA's CUDA libraries (an NVIDIA GPU was found, or TORCH=cuda). "
            "The assignments run on a CPU; for the small CPU-only build: make setup TORCH=cpu".format(
                torch_pin))


def install_steps(venv, build, torch_pin, switching):
    """The pip commands, in order, as (what it is, argv)."""
    pip = pip_argv(venv)
    steps = [("pip itself", pip + ["install", "--quiet", "--upgrade", "pip"])]
    force = ["--force-reinstall"] if switching else []
    if build == "cpu":
        steps.append(("PyTorch's CPU-only build", pip + ["install"] + force + [
            "torch==" + torch_pin, "--index-url", CPU_INDEX]))
    elif switching:
        steps.append(("PyPI's PyTorch", pip + ["install", "--force-reinstall", "torch==" + torch_pin]))
    steps.append(("the course's packages", pip + ["install", "--editable", HERE]))
    return steps


def failure_help(what, via_make):
    """What to do when an install step failed."""
    lines = ["Installing {} failed (pip's message is above). The .venv folder is kept: fix the cause "
             "(network, disk space) and run {} again; it continues where it stopped.".format(
                 what, "make setup" if via_make else "this script")]
    if what == "PyTorch's CPU-only build":
        lines.append("If {} cannot be reached from your network, install PyPI's build instead "
                     "(about 3.5 GB): make setup TORCH=cuda".format(CPU_INDEX))
    return "\n".join(lines)


def create_venv(venv, state, detail, minimum, via_make):
    """Check this Python, remove a venv that must be rebuilt, and make a new one."""
    if sys.version_info[:2] < minimum:
        if state == "rebuild":
            say("{} must be rebuilt: {}.".format(venv, detail))
        raise SetupError(refusal(minimum, via_make))
    if state == "rebuild":
        say("Rebuilding {}: {}.".format(venv, detail))
        shutil.rmtree(venv)
    say("Creating {} with Python {} ({})".format(venv, version_text(sys.version_info), sys.executable))
    argv = [sys.executable, "-m", "venv"] + (["--without-pip"] if os.environ.get(FAKE_PIP) else []) + [venv]
    code, out = run_quietly(argv)
    if code != 0:
        if os.path.isdir(venv):
            shutil.rmtree(venv)
        name = "python{}.{}".format(*sys.version_info[:2])
        raise SetupError("Could not create {} with {}:\n{}\nOn Debian or Ubuntu, install the venv module "
                         "(sudo apt install {}-venv), then run {} again.".format(
                             venv, sys.executable, out, name, "make setup" if via_make else "this script"))


def write_stamp(venv, values):
    with open(os.path.join(venv, STAMP), "w") as handle:
        json.dump(values, handle)


def setup(venv, asked, via_make):
    """Make `venv` hold the course's packages; returns the exit code (0: ready)."""
    minimum, torch_pin = project()
    state, detail = inspect_venv(venv, minimum)
    stamp = read_stamp(venv) if state == "ok" else {}
    build = torch_build(asked, stamp, platform.system())
    with open(PYPROJECT, "rb") as handle:
        wanted = {"pyproject": hashlib.sha256(handle.read()).hexdigest(), "torch": build, "complete": True}
    if state == "ok" and all(stamp.get(key) == value for key, value in wanted.items()):
        return 0
    problem = pip_problem(venv) if state == "ok" else None
    if problem:
        state, detail, stamp = "rebuild", problem, {}
    if state != "ok":
        create_venv(venv, state, detail, minimum, via_make)
    python = detail if state == "ok" else version_text(sys.version_info)
    switching = stamp.get("torch") not in (None, build)  # another build may be installed, even half way
    write_stamp(venv, {"torch": build, "complete": False})
    announce(build, torch_pin, python)
    environment = dict(os.environ, PYTHONWARNINGS=QUIET_WARNINGS)
    for what, argv in install_steps(venv, build, torch_pin, switching):
        say("--- {}".format(what))
        if subprocess.call(argv, env=environment) != 0:
            say(failure_help(what, via_make))
            return 1
    write_stamp(venv, dict(wanted, python=python))
    say("Done: {} is ready (Python {}, PyTorch {} {}). Next: make lab".format(
        venv, python, torch_pin, {"cpu": "CPU-only", "cuda": "with CUDA", "pypi": "from PyPI"}[build]))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="install.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", default=".venv", help="the environment's folder (default: .venv)")
    parser.add_argument("--torch", default="auto", choices=("auto", "cpu", "cuda"),
                        help="PyTorch build on Linux: cpu (0.2 GB), cuda (PyPI's, 3.5 GB), auto: cuda only "
                             "where an NVIDIA GPU is found (default), or what an earlier run installed")
    args = parser.parse_args(argv)
    via_make = bool(os.environ.get("MAKELEVEL"))
    try:
        return setup(os.path.abspath(os.path.join(HERE, args.venv)), args.torch, via_make)
    except SetupError as error:
        sys.stderr.write("\n{}\n".format(error))
        return 2


if __name__ == "__main__":
    sys.exit(main())
