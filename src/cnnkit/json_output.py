"""Standard JSON for every `--json` printer and the run's JSON files: non-finite numbers become `null`.

Python's `json` writes bare `NaN`/`Infinity`, which no other JSON reader accepts; a metric that could
not be computed (a class never seen, a loss that diverged) must still leave the output parseable.
"""
from __future__ import annotations

import json
import math
from typing import Any


def finite(obj: Any) -> Any:
    """`obj` with every float that is NaN or infinite replaced by None; numpy/torch scalars and arrays
    become plain numbers and lists; other unknown objects become their `str`."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [finite(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy / torch scalars and arrays
        return finite(obj.tolist())
    try:
        return finite(float(obj))
    except (TypeError, ValueError):
        return str(obj)


def dumps(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` of `finite(obj)`, refusing anything non-standard (allow_nan=False)."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
