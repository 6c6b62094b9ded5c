"""One `Registry` type: the only place a name becomes an object (models, tasks, datasets, formats)."""
from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from cnnkit.errors import CnnkitError, did_you_mean


class Registry:
    """Maps names to builders, with free-form metadata per entry.

    >>> MODELS = Registry("model")
    >>> @MODELS.register("lenet5", tasks=("classify",))
    ... def lenet5(**kw): ...
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def add(obj: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            self._meta[name] = dict(meta)
            return obj

        return add

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            raise CnnkitError(
                f'Unknown {self.kind} "{name}".{did_you_mean(name, self._entries)} '
                f"Known: {', '.join(sorted(self._entries)) or '(none)'}."
            )
        return self._entries[name]

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._meta[name]

    def list(self, pattern: str = "*", **where: Any) -> list[str]:
        """Sorted names matching a shell-style pattern and, optionally, metadata filters.

        A metadata value that is a tuple/list matches when it contains the asked value
        (`list(task="detect")` finds entries registered with `tasks=("detect",)` too).
        """
        out = []
        for name in sorted(self._entries):
            if not fnmatch.fnmatch(name, pattern):
                continue
            meta = self._meta[name]
            ok = True
            for key, want in where.items():
                have = meta.get(key, meta.get(key + "s"))
                if isinstance(have, (tuple, list, set)):
                    ok &= want in have
                else:
                    ok &= have == want
            if ok:
                out.append(name)
        return out

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(sorted(self._entries))
