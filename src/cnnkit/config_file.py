"""Reading a `--config` recipe file: YAML through `yaml.safe_load` (no `!!python` tags), with caps on its
size, its values once YAML aliases are expanded, and its nesting, checked before the values are used.
A refused file is one CnnkitError naming it (issue 15)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cnnkit.errors import CnnkitError

MAX_CONFIG_BYTES = 1 << 20  # caps on a --config recipe: real ones are a few hundred bytes
MAX_CONFIG_NODES = 100_000


def read_recipe(path: Path) -> dict[str, Any]:
    """The mapping a recipe file holds. Raises CnnkitError when the file is missing, over
    MAX_CONFIG_BYTES, not UTF-8, not valid YAML, nested too deeply, expands past MAX_CONFIG_NODES
    values, or is not a mapping."""
    if not path.is_file():
        raise CnnkitError(f"Config file {path} {'is not a file' if path.exists() else 'does not exist'}.")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise CnnkitError(f"Config file {path} is {path.stat().st_size:,} bytes; a recipe is at most "
                          f"{MAX_CONFIG_BYTES:,} (config_file.MAX_CONFIG_BYTES).")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        nodes = count_nodes(data)
    except yaml.YAMLError as e:
        raise CnnkitError(f"Config file {path} is not valid YAML: {e}") from None
    except (RecursionError, UnicodeDecodeError) as e:
        why = "is nested too deeply" if isinstance(e, RecursionError) else "is not UTF-8 text"
        raise CnnkitError(f"Config file {path} {why}; a recipe is a flat mapping of keys to values.") from None
    if nodes > MAX_CONFIG_NODES:  # YAML aliases can make a small file expand to billions of values
        raise CnnkitError(f"Config file {path} expands to {nodes:,} values (YAML aliases?); a recipe holds at "
                          f"most {MAX_CONFIG_NODES:,} (config_file.MAX_CONFIG_NODES).")
    if not isinstance(data, dict):
        raise CnnkitError(f"Config file {path} must hold a mapping of keys to values.")
    return data


def count_nodes(obj: Any, seen: dict[int, int] | None = None) -> int:
    """Values in `obj` once every YAML alias is expanded, counted once per shared object (linear time)."""
    seen = {} if seen is None else seen
    if id(obj) in seen:
        return seen[id(obj)]
    items = list(obj.items()) if isinstance(obj, dict) else obj if isinstance(obj, list) else ()
    total = 1 + sum(count_nodes(k, seen) + count_nodes(v, seen) for k, v in items) if isinstance(obj, dict) \
        else 1 + sum(count_nodes(v, seen) for v in items)
    seen[id(obj)] = total
    return total
