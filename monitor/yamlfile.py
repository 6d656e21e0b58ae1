"""Reading a YAML file whose top level is a mapping: the config file and the web config file.

`read_yaml_mapping(path, label)` parses with a SafeLoader that refuses a key repeated in one
mapping (a silent override otherwise) and turns every failure into one `ConfigError` that
starts with the path:

    PATH: LABEL not found
    PATH: cannot read LABEL (OSError)
    PATH: YAML syntax error at line L, column C: PROBLEM
    PATH: the top level must be EXPECTED, not TYPE
    PATH: YAML nested too deeply (more than Python's recursion limit allows)
    PATH: a YAML value cannot be read: an integer of more than 4300 digits

A YAML error reports its position only, never the offending source line (which could hold a
password or a bcrypt hash). An empty file is an empty mapping.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from monitor.errors import ConfigError

__all__ = ["read_yaml_mapping"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    """Build a mapping, raising a marked error on a duplicate key."""
    seen: set[Any] = set()
    for key_node, _value_node in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def read_yaml_mapping(path: Path, label: str, expected: str = "a mapping") -> dict[Any, Any]:
    """The top-level mapping of the YAML file at `path` ({} for an empty file).

    `label` names the file in the not-found and unreadable messages ("config file");
    `expected` describes the top level in the not-a-mapping message. Every failure is a
    ConfigError in the forms of the module docstring.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {label} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {label} ({type(exc).__name__})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"{path}: YAML syntax error at {where}: {problem}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{path}: YAML syntax error") from None
    except RecursionError:  # PyYAML composes and constructs nested nodes recursively
        raise ConfigError(
            f"{path}: YAML nested too deeply (more than Python's recursion limit allows)"
        ) from None
    except ValueError:  # int() of a scalar beyond sys.get_int_max_str_digits()
        raise ConfigError(
            f"{path}: a YAML value cannot be read: an integer of more than "
            f"{sys.get_int_max_str_digits()} digits"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be {expected}, not {type(data).__name__}")
    return data
