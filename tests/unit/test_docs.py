"""The project's files stand alone: no citation of design files or notes outside the repository."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Directories that are not the project's own files (tool caches, virtualenvs, build output).
SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".venv",
        ".bench-venvs",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        "__pycache__",
        "build",
        "dist",
        "state",
    }
)

#: Citations of documents a user of the repository does not have. Spelled in pieces so that
#: this file does not match itself.
FOREIGN = re.compile(
    "|".join(
        (
            "DESIGN" + r"\.md",
            "DESIGN" + r"\s+(?:section|§)",
            r"\.\./" + "shared",
            "research" + r"/\w",
            "research" + r"\s+(?:§|section\s+\d)",
        )
    )
)


def project_files(root: Path = ROOT) -> Iterator[Path]:
    """Every file of the project below `root`, skipping caches, virtualenvs and build output."""
    for path in sorted(root.iterdir()):
        if path.is_dir():
            if path.name in SKIPPED_DIRS or path.name.endswith(".egg-info"):
                continue
            yield from project_files(path)
        elif path.is_file():
            yield path


def foreign_citations(root: Path = ROOT) -> list[str]:
    """`path:line: text` of every line of a text file below `root` citing a foreign document."""
    found: list[str] = []
    for path in project_files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary files cite nothing
        for number, line in enumerate(text.splitlines(), start=1):
            if FOREIGN.search(line):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_no_file_cites_documents_outside_the_repository() -> None:
    """No project file cites the external design file, the shared folder or the research notes."""
    assert foreign_citations() == []


@pytest.mark.parametrize(
    "line",
    [
        "see DESIGN" + ".md section 4",
        "(DESIGN" + " section 3)",
        "as in ../" + "shared/ops.md",
        "caveats (research" + "/ops.md)",
        "set-up as in research" + " §6",
    ],
)
def test_the_check_finds_each_kind_of_citation(tmp_path: Path, line: str) -> None:
    """A planted citation in a nested text file is reported with its path and line."""
    nested = tmp_path / "pkg" / "mod.py"
    nested.parent.mkdir()
    nested.write_text(f'"""Doc."""\n# {line}\n', encoding="utf-8")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "ignored.py").write_text(f"# {line}\n", encoding="utf-8")
    assert foreign_citations(tmp_path) == [f"pkg/mod.py:2: # {line}"]


def test_architecture_doc_exists_and_is_linked_from_the_readme() -> None:
    """docs/architecture.md exists and the README links it."""
    assert (ROOT / "docs" / "architecture.md").is_file()
    assert "docs/architecture.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_relative_links_in_docs_resolve() -> None:
    """Every relative Markdown link in README.md and docs/ points to an existing file."""
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    broken: list[str] = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in link.findall(doc.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert broken == []


def _python_trees() -> set[str]:
    """Top-level directories of the project that hold Python files."""
    return {
        path.relative_to(ROOT).parts[0]
        for path in project_files()
        if path.suffix == ".py" and len(path.relative_to(ROOT).parts) > 1
    }


def test_ruff_and_mypy_cover_every_python_tree() -> None:
    """`make test` lints and type-checks every top-level directory that holds Python code."""
    import tomllib

    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    declared = re.search(r"^LINTED := (.+)$", makefile, flags=re.MULTILINE)
    assert declared is not None, "the Makefile names its Python trees in LINTED"
    linted = set(declared[1].split())
    assert "ruff check $(LINTED)" in makefile and "ruff format --check $(LINTED)" in makefile
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert mypy["strict"] is True
    trees = _python_trees()
    assert trees >= {"monitor", "tests", "bench", "grafana", "scripts"}
    assert trees <= linted
    assert trees <= set(mypy["files"])
