"""`HealthReport`: what `cnnkit data inspect` prints, whatever the format (counts + one line per problem)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class HealthReport:
    """What `cnnkit data inspect` prints: counts, and one line per problem with its file."""

    source: str
    counts: dict[str, Any] = field(default_factory=dict)  # e.g. {"images": 120, "boxes": 300, "per_class": {...}}
    issues: list[dict[str, str]] = field(default_factory=list)  # {"file": ..., "problem": ..., "kind": ...}

    def add(self, kind: str, file: str, problem: str) -> None:
        self.issues.append({"kind": kind, "file": str(file), "problem": problem})

    def by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for issue in self.issues:
            out[issue["kind"]] = out.get(issue["kind"], 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "counts": self.counts, "issue_counts": self.by_kind(), "issues": self.issues}
