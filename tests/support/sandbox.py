"""The container's runtime contract without Docker: bubblewrap (Debian `bubblewrap`).

`image_venv` installs driftmon the way deploy/Dockerfile's builder stage does (a venv,
`pip install --require-hashes -r deploy/requirements.lock`, then the project itself with
`--no-deps --no-build-isolation` from a copy of exactly the files the Dockerfile COPYs).

`container_argv` runs a command the way the image runs it:

- the whole host file system read-only (`--ro-bind / /`), fresh /dev and /proc;
- a private, empty, writable tmpfs on /tmp (mode 1777);
- /etc/driftmon holding the config, read-only (/etc is rebuilt as a read-only tmpfs whose
  entries are read-only binds of the host's, because a mount point cannot be made inside a
  read-only bind);
- the state directory bound read-write on /var/lib/driftmon (the only writable path besides
  /tmp; /var/lib is an empty read-only tmpfs around it);
- the image's environment (PATH with the venv first, PYTHONDONTWRITEBYTECODE=1, HOME=/tmp);
- uid/gid 10001 for real (`setpriv` after bwrap, so the kernel checks every access as an
  unprivileged user with no capabilities and no_new_privs), the host's network namespace
  (the broker on 127.0.0.1 stays reachable), killed with its parent.

bwrap does not forward signals: stop the daemon by signalling `sandboxed_pid(bwrap_pid)`.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from tests.support.ops_services import REPO_ROOT, find_tool

UID = 10001
STATE_DIR = "/var/lib/driftmon"
CONFIG_DIR = "/etc/driftmon"
LOCK_FILE = REPO_ROOT / "deploy" / "requirements.lock"
DOCKERFILE_COPIES = ("pyproject.toml", "README.md", "monitor")


def bwrap_binary() -> str:
    """Path of bwrap (Debian `bubblewrap`); a missing one fails with an install hint."""
    return find_tool("bwrap")


def image_venv(directory: Path) -> Path:
    """Build the image's /opt/venv equivalent in `directory / "venv"`; returns the venv path."""
    src = directory / "src"
    src.mkdir(parents=True)
    for name in DOCKERFILE_COPIES:
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, src / name)
    venv = directory / "venv"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    for argv in (
        [sys.executable, "-m", "venv", str(venv)],
        [*pip, "--require-hashes", "-r", str(LOCK_FILE)],
        [*pip, "--no-deps", "--no-build-isolation", str(src)],
    ):
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
    return venv


def _reachable(path: Path) -> list[str]:
    """bwrap args that let any uid reach `path`: the first ancestor closed to others (e.g.
    /root, mode 0700) is replaced by an empty 0755 tmpfs into which `path` is bound read-only."""
    resolved = path.resolve()
    for ancestor in [*reversed(resolved.parents), resolved]:
        if not ancestor.stat().st_mode & stat.S_IXOTH:
            return ["--perms", "0755", "--tmpfs", str(ancestor), "--ro-bind", str(path), str(path)]
    return []


def _open_dirs_in_tmp(path: Path) -> list[str]:
    """`--dir` (mode 0755) for each ancestor of `path` inside the sandbox's fresh /tmp, so uid
    10001 can reach a venv built under a private pytest directory (bwrap would copy 0700)."""
    tmp = Path("/tmp")
    ancestors = [a for a in reversed(path.parents) if tmp in a.parents]
    return [arg for a in ancestors for arg in ("--perms", "0755", "--dir", str(a))]


def _mirror_etc(config_dir: Path) -> list[str]:
    """/etc as a read-only tmpfs of read-only binds of the host's entries, plus /etc/driftmon."""
    args = ["--tmpfs", "/etc"]
    for entry in sorted(Path("/etc").iterdir()):
        if entry.name == "driftmon":
            continue
        if entry.is_symlink():
            args += ["--symlink", os.readlink(entry), str(entry)]
        elif entry.exists():
            args += ["--ro-bind", str(entry), str(entry)]
    return [*args, "--ro-bind", str(config_dir), CONFIG_DIR, "--remount-ro", "/etc"]


def container_argv(venv: Path, config_dir: Path, state_dir: Path, *command: str) -> list[str]:
    """The bwrap + setpriv argv that runs `command` under the image's runtime contract."""
    python_home = Path(sys.base_prefix)
    env = {
        "PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
    }
    argv = [
        bwrap_binary(),
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--perms", "1777", "--tmpfs", "/tmp",
        *_reachable(python_home),
        *_open_dirs_in_tmp(venv),
        "--ro-bind", str(venv), str(venv),
        *_mirror_etc(config_dir),
        "--tmpfs", "/var/lib",
        "--bind", str(state_dir), STATE_DIR,
        "--remount-ro", "/var/lib",
        "--chdir", STATE_DIR,
        "--die-with-parent",
        "--clearenv",
    ]  # fmt: skip
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return [
        *argv,
        "setpriv",
        f"--reuid={UID}",
        f"--regid={UID}",
        "--clear-groups",
        "--no-new-privs",
        *command,
    ]


def sandboxed_pid(bwrap_pid: int) -> int | None:
    """The pid of the command bwrap started (its only child), None if not (yet) there."""
    try:
        children = Path(f"/proc/{bwrap_pid}/task/{bwrap_pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None
