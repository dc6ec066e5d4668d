"""The student package's set-up (student/install.py, run by `make setup`), without downloading anything:
pip is replaced by a fake that logs its arguments (VITCOURSE_SETUP_FAKE_PIP), the environments are real.

An unsupported Python is refused before anything is installed, with the command to run instead;
a .venv made with an old Python, or whose Python no longer runs, is rebuilt; a folder that is not a
virtual environment is left alone; a stopped install continues; a finished one is not redone;
on Linux the CPU-only PyTorch is installed unless an NVIDIA GPU is found or TORCH=cuda is asked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.config.course import REPO_ROOT
from autograder.commands.package import student_pyproject

STUDENT = REPO_ROOT / "student"
PYENV = Path.home() / ".pyenv" / "versions"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
THIS = f"{sys.version_info.major}.{sys.version_info.minor}"
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="the PyTorch build is chosen on Linux only")


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def package(tmp_path) -> Path:
    """A student package's set-up files: install.py, the Makefile and the generated pyproject.toml."""
    folder = tmp_path / "package"
    folder.mkdir()
    for name in ("install.py", "Makefile"):
        shutil.copy2(STUDENT / name, folder / name)
    (folder / "pyproject.toml").write_text(student_pyproject())
    return folder


@pytest.fixture
def fake_pip(tmp_path) -> Path:
    """pip's stand-in: logs each call's arguments as a JSON line; FAKE_PIP_FAIL=install makes installs fail."""
    log = tmp_path / "pip.log"
    script = (f"#!{sys.executable}\nimport json, os, sys\n"
              f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
              "sys.exit(1 if os.environ.get('FAKE_PIP_FAIL') == sys.argv[1] else 0)\n")
    return executable(tmp_path / "fake-pip", script)


def pip_calls(fake_pip: Path) -> list[list[str]]:
    log = fake_pip.with_name("pip.log")
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run_setup(package: Path, python: str, fake_pip: Path, *args: str, path_dirs=(), via_make=True, **env):
    """`make setup PYTHON=python ...` (or `python install.py ...`) in `package`, with PATH = path_dirs + the system's."""
    environment = {key: value for key, value in os.environ.items() if key not in ("MAKELEVEL", "MAKEFLAGS")}
    environment |= {"VITCOURSE_SETUP_FAKE_PIP": str(fake_pip),
                    "PATH": os.pathsep.join([*map(str, path_dirs), "/usr/bin", "/bin"]), **env}
    argv = (["make", "setup", f"PYTHON={python}", *args] if via_make else [python, "install.py", *args])
    return subprocess.run(argv, cwd=package, env=environment, capture_output=True, text=True, timeout=300)


def fake_venv(folder: Path, version: str) -> None:
    """A .venv whose Python says it is `version` (as one made with that Python would)."""
    (folder / "bin").mkdir(parents=True)
    (folder / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {version}\n")
    executable(folder / "bin" / "python", f"#!/bin/sh\necho {version}\n")


def stamp(package: Path) -> dict:
    return json.loads((package / ".venv" / ".installed").read_text())


def venv_version(package: Path) -> str:
    return subprocess.run([str(package / ".venv" / "bin" / "python"), "-c",
                           "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_an_unsupported_python_is_refused_with_the_command_to_run(package, fake_pip, tmp_path):
    """This Python, with the course asking for a newer one: nothing is created, and the message says
    what this Python is, what is needed, and the `make setup PYTHON=...` of a newer one on PATH."""
    text = (package / "pyproject.toml").read_text()
    newer = f"{sys.version_info.major}.{sys.version_info.minor + 1}"
    (package / "pyproject.toml").write_text(re.sub(r'requires-python = "[^"]+"', f'requires-python = ">={newer}"', text))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable(bin_dir / f"python{newer}", "#!/bin/sh\nexit 0\n")
    done = run_setup(package, sys.executable, fake_pip, path_dirs=[bin_dir])
    assert done.returncode == 2, done
    assert f"This is Python {sys.version.split()[0]} ({sys.executable})" in done.stderr
    assert f"need Python {newer} or newer. Nothing was installed." in done.stderr
    assert f"python{newer} is on this machine: run\n\n    make setup PYTHON=python{newer}\n" in done.stderr, done.stderr
    assert not (package / ".venv").exists() and pip_calls(fake_pip) == []
    # Without a newer Python on PATH: how to get one, and the command for after.
    (bin_dir / f"python{newer}").unlink()
    done = run_setup(package, sys.executable, fake_pip, path_dirs=[bin_dir], via_make=False)
    assert done.returncode == 2
    assert f"Install Python {newer} or newer, then run `python{newer} install.py`" in done.stderr, done.stderr
    assert "deadsnakes" in done.stderr and "python.org" in done.stderr
    assert not (package / ".venv").exists()


def old_python(version: str) -> str | None:
    """An interpreter of ``version`` on this machine (pyenv's or on PATH), or None."""
    found = sorted(PYENV.glob(f"{version}.*/bin/python"))
    return str(found[-1]) if found else shutil.which(f"python{version}")


@pytest.mark.parametrize("version", [
    pytest.param(v, marks=pytest.mark.skipif(old_python(v) is None, reason=f"no Python {v} on this machine"))
    for v in ("2.7", "3.6", "3.10")])
def test_an_old_python_gets_the_message_not_a_crash(package, fake_pip, version):
    """install.py runs on old Pythons far enough to say what to do (the course needs 3.11)."""
    python = old_python(version)
    done = run_setup(package, str(python), fake_pip)
    assert done.returncode == 2, done
    assert re.search(rf"This is Python {re.escape(version)}\.\d+ .*need Python 3\.11 or newer\. Nothing was installed\.",
                     done.stderr), done.stderr
    assert "Traceback" not in done.stderr and not (package / ".venv").exists()


def test_a_venv_of_an_old_python_is_rebuilt(package, fake_pip):
    """The .venv left by a failed set-up with Python 3.10: kept (and said) while the Python offered
    is also too old; deleted and made again with a supported one, then installed."""
    fake_venv(package / ".venv", "3.10.12")
    (package / ".venv" / "from-3.10").write_text("")
    old_python = sorted(PYENV.glob("3.10.*/bin/python"))
    if old_python:
        kept = run_setup(package, str(old_python[-1]), fake_pip)
        assert kept.returncode == 2 and "must be rebuilt: it was made with Python 3.10.12" in kept.stdout, kept
        assert (package / ".venv" / "from-3.10").exists()  # nothing deleted before a new one can be made
    done = run_setup(package, sys.executable, fake_pip)
    assert done.returncode == 0, done
    assert "Rebuilding" in done.stdout and "it was made with Python 3.10.12, and the course needs 3.11 or newer" in done.stdout
    assert venv_version(package) == THIS and not (package / ".venv" / "from-3.10").exists()
    assert stamp(package)["complete"] is True and stamp(package)["python"].startswith(THIS)
    installs = [call for call in pip_calls(fake_pip) if call[0] == "install"]
    assert installs[-1] == ["install", "--editable", str(package)], installs
    assert f"Done: {package / '.venv'} is ready (Python {sys.version.split()[0]}" in done.stdout


def test_a_venv_whose_python_no_longer_runs_is_rebuilt(package, fake_pip):
    (package / ".venv" / "bin").mkdir(parents=True)
    (package / ".venv" / "pyvenv.cfg").write_text("home = /gone\n")
    (package / ".venv" / "bin" / "python").symlink_to("/gone/python3.11")
    done = run_setup(package, sys.executable, fake_pip)
    assert done.returncode == 0, done
    assert "Rebuilding" in done.stdout and "its Python does not run" in done.stdout
    assert venv_version(package) == THIS


def test_a_folder_that_is_no_venv_is_left_alone(package, fake_pip):
    (package / ".venv").mkdir()
    (package / ".venv" / "notes.txt").write_text("mine")
    done = run_setup(package, sys.executable, fake_pip)
    assert done.returncode == 2
    assert "is not a Python virtual environment (it has no pyvenv.cfg), so it was left alone" in done.stderr
    assert [p.name for p in (package / ".venv").iterdir()] == ["notes.txt"] and pip_calls(fake_pip) == []


def test_a_stopped_install_continues_and_a_finished_one_is_not_redone(package, fake_pip):
    failed = run_setup(package, sys.executable, fake_pip, via_make=False, FAKE_PIP_FAIL="install")
    assert failed.returncode == 1 and "failed (pip's message is above). The .venv folder is kept" in failed.stdout
    assert "run this script again; it continues where it stopped" in failed.stdout
    assert stamp(package)["complete"] is False
    calls = len(pip_calls(fake_pip))
    done = run_setup(package, sys.executable, fake_pip)
    assert done.returncode == 0 and "Creating" not in done.stdout and "Rebuilding" not in done.stdout, done
    assert stamp(package)["complete"] is True and len(pip_calls(fake_pip)) > calls
    calls = len(pip_calls(fake_pip))
    again = run_setup(package, sys.executable, fake_pip)
    assert again.returncode == 0 and again.stdout == "" and again.stderr == "", again
    assert len(pip_calls(fake_pip)) == calls  # nothing run, not even pip --version
    # A changed pyproject.toml (a new pin) installs again, in the same environment.
    with (package / "pyproject.toml").open("a") as handle:
        handle.write("\n# changed\n")
    changed = run_setup(package, sys.executable, fake_pip)
    assert changed.returncode == 0 and "Installing the course's packages" in changed.stdout
    assert "Creating" not in changed.stdout


@linux_only
@pytest.mark.skipif(Path("/proc/driver/nvidia/version").exists(), reason="this machine has an NVIDIA driver")
def test_the_download_is_announced_and_linux_without_a_gpu_gets_the_cpu_build(package, fake_pip):
    done = run_setup(package, sys.executable, fake_pip)
    assert done.returncode == 0, done
    assert re.search(r"Installing the course's packages with Python [\d.]+: about 0\.4 GB \(PyTorch's CPU-only build: "
                     r"0\.2 GB\) to download, about 1\.5 GB on disk\.", done.stdout), done.stdout
    assert "pip shows each download with its size and progress" in done.stdout
    assert "make setup TORCH=cuda" in done.stdout
    installs = [call for call in pip_calls(fake_pip) if call[0] == "install"]
    pin = re.search(r'"torch==([^"]+)"', (package / "pyproject.toml").read_text()).group(1)
    assert ["install", f"torch=={pin}", "--index-url", CPU_INDEX] in installs, installs
    assert "--quiet" not in installs[-1]  # pip's progress is shown
    assert stamp(package)["torch"] == "cpu"


@linux_only
def test_an_nvidia_gpu_or_torch_cuda_gets_pypis_build_and_a_switch_reinstalls(package, fake_pip, tmp_path):
    bin_dir = tmp_path / "gpu-bin"
    bin_dir.mkdir()
    executable(bin_dir / "nvidia-smi", "#!/bin/sh\nexit 0\n")
    done = run_setup(package, sys.executable, fake_pip, path_dirs=[bin_dir])
    assert done.returncode == 0, done
    assert "about 3.5 GB (PyTorch 0.5 GB, NVIDIA's CUDA libraries about 2.5 GB) to download" in done.stdout
    assert "for the small CPU-only build: make setup TORCH=cpu" in done.stdout
    assert not [call for call in pip_calls(fake_pip) if CPU_INDEX in call]
    assert stamp(package)["torch"] == "cuda"
    # A later `make lab` (TORCH=auto) keeps the build chosen; TORCH=cpu replaces it.
    assert run_setup(package, sys.executable, fake_pip).stdout == ""
    switched = run_setup(package, sys.executable, fake_pip, "TORCH=cpu")
    assert switched.returncode == 0, switched
    torch_install = [call for call in pip_calls(fake_pip) if CPU_INDEX in call][-1]
    assert torch_install[:2] == ["install", "--force-reinstall"], torch_install
    assert stamp(package)["torch"] == "cpu"
