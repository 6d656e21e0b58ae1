"""One virtualenv per peer under `.bench-venvs/<peer>` (gitignored): their pins conflict.

alibi-detect needs numpy<2, Frouros numpy<2.2 and scipy<1.15, River numpy>=2.2.5, and
Evidently 0.7.23 and NannyML 0.13.1 break on pandas 3, so no two can share an environment.
`ensure(peer)` creates the venv with this interpreter's `venv` module and installs
`bench/requirements/<peer>.txt` with pip; a stamp holding the requirements' hash makes the
next run skip the install. A failure never raises: it returns the reason, which the
benchmark table shows in place of the peer's numbers.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.procs import REPO

VENV_ROOT = REPO / ".bench-venvs"
REQUIREMENTS = REPO / "bench" / "requirements"
INSTALL_TIMEOUT_S = 1800.0


@dataclass(frozen=True, slots=True)
class Peer:
    """A peer tool: its venv/requirements name, its script and the module that must import.

    `variants` are (variant, window limit) pairs, run in turn; None runs every window.
    """

    name: str
    module: str
    probe: str
    variants: tuple[tuple[str, int | None], ...] = (("", None),)


PEERS: tuple[Peer, ...] = (
    Peer("evidently", "bench.peers.evidently", "evidently", (("stattests", None), ("preset", 4))),
    Peer("nannyml", "bench.peers.nannyml", "nannyml"),
    Peer("alibi-detect", "bench.peers.alibi", "alibi_detect"),
    Peer("frouros", "bench.peers.frouros", "frouros"),
    Peer("river", "bench.peers.river", "river"),
)


def peer(name: str) -> Peer:
    """The named peer (ValueError listing the known names otherwise)."""
    for candidate in PEERS:
        if candidate.name == name:
            return candidate
    raise ValueError(f"unknown peer {name!r}; known: {', '.join(p.name for p in PEERS)}")


def python_of(p: Peer) -> Path:
    """The peer venv's interpreter."""
    return VENV_ROOT / p.name / "bin" / "python"


def _requirements_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _last_lines(path: Path, n: int = 3) -> str:
    try:
        lines = [x.strip() for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return " / ".join(lines[-n:])[-400:]


def ensure(p: Peer) -> str | None:
    """Create and install the peer's venv unless its stamp is current; the reason on failure."""
    requirements = REQUIREMENTS / f"{p.name}.txt"
    if not requirements.is_file():
        return f"no requirements file {requirements.relative_to(REPO)}"
    venv = VENV_ROOT / p.name
    stamp = venv / ".bench-installed"
    wanted = _requirements_hash(requirements)
    if stamp.is_file() and stamp.read_text().strip() == wanted and python_of(p).exists():
        return None
    VENV_ROOT.mkdir(parents=True, exist_ok=True)
    log = VENV_ROOT / f"{p.name}.install.log"
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python_of(p)), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
        [str(python_of(p)), "-c", f"import {p.probe}"],
    ]
    with log.open("w") as out:
        for step in steps:
            try:
                done = subprocess.run(
                    step,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=INSTALL_TIMEOUT_S,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"{' '.join(step[-3:])} failed: {exc}"
            if done.returncode != 0:
                out.flush()
                reason = _last_lines(log)
                return f"`{' '.join(step[1:3])}` failed ({reason}); log: {log.relative_to(REPO)}"
    stamp.write_text(wanted + "\n")
    return None
