"""Tasks: classify, detect, segment (semantic), instance (masks per object) — each one file implementing
`cnnkit.tasks.base.Task` and registered in `TASKS`; `boxes` holds what the two box tasks share.
A new task is one more such file (tests/tasks/test_custom_task.py registers one from a test)."""
from cnnkit.registry import Registry

TASKS = Registry("task")

from cnnkit.tasks import classify as _classify  # noqa: F401,E402
from cnnkit.tasks import detect as _detect  # noqa: F401,E402
from cnnkit.tasks import segment as _segment  # noqa: F401,E402
from cnnkit.tasks import instance as _instance  # noqa: F401,E402
from cnnkit.tasks import seq_classify as _seq_classify  # noqa: F401,E402
from cnnkit.tasks import seq_regress as _seq_regress  # noqa: F401,E402


def get_task(name: str):
    """A fresh Task object for a registered task name ("classify", "detect", "segment", "instance", ...)."""
    return TASKS.get(name)()
