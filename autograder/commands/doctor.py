"""`doctor`: check (and with --install, apt-get install) what the autograder needs from the OS."""

from __future__ import annotations

import os
import shutil
import subprocess

# Debian package -> command it provides.
APT_PACKAGES = {"bubblewrap": "bwrap", "util-linux": "prlimit"}
# setpriv (util-linux) is only used when grading as root, to run each kernel under a uid of its own.
OPTIONAL_COMMANDS = {"setpriv": "util-linux"}


def missing_packages() -> list[str]:
    """Debian packages whose command is not on PATH."""
    commands = {**{cmd: pkg for pkg, cmd in APT_PACKAGES.items()}, **OPTIONAL_COMMANDS}
    return sorted({pkg for cmd, pkg in commands.items() if shutil.which(cmd) is None})


def install(packages: list[str]) -> None:
    """apt-get install `packages` (needs root)."""
    if os.geteuid() != 0:
        raise PermissionError(f"installing {packages} needs root: sudo apt-get install -y {' '.join(packages)}")
    subprocess.run(["apt-get", "update"], check=True)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *packages], check=True)


def doctor(*, install_missing: bool = False, report=print) -> bool:
    """Report whether kernels can be sandboxed here; True when everything works."""
    from autograder.sandbox.launch import check_bwrap

    missing = missing_packages()
    if missing and install_missing:
        install(missing)
        missing = missing_packages()
    if missing:
        report(f"missing Debian packages: {' '.join(missing)} (python -m autograder doctor --install)")
        return False
    problem = check_bwrap()
    if problem:
        report(f"sandbox: {problem}")
        report("fallback: `grade --no-sandbox` keeps resource limits but not file/network isolation")
        return False
    report("sandbox: bubblewrap works (user, pid, net and mount namespaces); prlimit found")
    from autograder.sandbox.budget import hierarchies

    report(f"per-submission budget: {hierarchies().describe()}")
    return True
