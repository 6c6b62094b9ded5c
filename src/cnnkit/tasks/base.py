"""The `Task` interface: the step contract of a job, and nothing more.

The engine (`Trainer`, `evaluate`, the predict loop in `engine/predictor.py`), explain and
the run resolver call only what is declared here (DESIGN rule 1), so a new task is one
file in `tasks/` registered in `TASKS`. A task says what its model answers with (`output`)
and what it needs from the data (`target`); code outside `tasks/` asks those, never the
task's name. Per step: the engine moves a loader's batch with `to_device`, asks for `loss`
in train mode and `predict` in eval mode, and feeds predictions to the task's metric. Per
input file: `model_input` -> `predict_one` -> `record` (JSON), `draw` (pictures) and `describe`
(its line in `cnnkit predict`'s table).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.errors import CnnkitError


class Loader(Protocol):
    """An epoch-aware iterable: the order of epoch e is a function of (seed, e) only,
    which is what makes `--resume` replay the exact same batches."""

    def set_epoch(self, epoch: int) -> None: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...


class Metric(Protocol):
    def update(self, preds: Any, batch: Any) -> None: ...
    def compute(self) -> dict[str, Any]: ...  # floats for the headline numbers; lists/dicts for details


@dataclass
class Drawing:
    """One picture of one prediction. Saved as `<n>_<stem><suffix>.png` with its path in the
    record under `key`; with a `caption` it is instead a tile of one `predictions.png` grid
    (small images, such as a classifier's). `image`: uint8 C x H x W, or an H x W class-index
    mask (written as a palette PNG)."""

    image: torch.Tensor
    key: str = "drawing"
    suffix: str = ""
    caption: str | None = None


def image_side(value: int | tuple | list) -> list[int]:
    """`data.image_size` (an int or [h, w]) -> [h, w]."""
    return [int(value), int(value)] if isinstance(value, int) else [int(v) for v in value]


def listed(items: list[str], limit: int = 4) -> str:
    """The first `limit` items joined by commas, then how many more: "a, b, c, d, +3 more" (a line
    of `cnnkit predict`'s table, kept short enough for an 80-column terminal)."""
    more = f", +{len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# key -> its default (= off). MixUp / CutMix / random erasing act on whole images and one label each;
# on boxes, masks or sequences they would need their own targets, so other tasks refuse them.
TASK_KEYS = {"data.augment_start_epoch": 1, "model.flip_tta": False, "data.mixup": 0.0, "data.cutmix": 0.0,
             "data.random_erasing": 0.0}


def honoured_by(key: str) -> list[str]:
    from cnnkit.tasks import TASKS

    return [name for name in TASKS.list() if key in getattr(TASKS.get(name), "honours", ())]


class Task:
    name: str = ""
    # What the model answers with: "logits" (N x K), "boxes" (per image {boxes, labels, scores[, masks]}),
    # "pixel_logits" (N x K x H x W) — or any other word for a model explain does not know.
    output: str = ""
    # What it needs from the data: "label" (an index per image), "boxes" (objects with boxes, and masks
    # when the data has them), "mask" (a class per pixel). `build_data(cfg, target=...)` serves that view.
    target: str = ""
    monitor: tuple[str, str] = ("loss", "min")  # (val metric, "max"|"min") for best.pt and early stopping
    headline: tuple[str, ...] = ()  # metric names shown in the progress bar and summary

    # Of TASK_KEYS (config keys only some tasks act on), the ones this task honours; setup refuses
    # a value other than the default for the rest instead of ignoring it.
    honours: tuple[str, ...] = ()

    cfg: Config | None = None
    info: DatasetInfo | None = None

    # -- configuration ----------------------------------------------------------------
    def setup(self, cfg: Config, info: DatasetInfo) -> None:
        """Called once the config is resolved (defaults filled), before any loader or model is
        built; also when a checkpoint is loaded. Keeps `self.cfg` / `self.info` for later steps.
        Raises CnnkitError for a TASK_KEYS value this task does not honour."""
        for key, default in TASK_KEYS.items():
            value = cfg.get(key)
            if key not in self.honours and value != default:
                raise CnnkitError(f"{key}={value} is not supported by the {self.name} task; remove it "
                                  f"(it applies to: {', '.join(sorted(honoured_by(key))) or 'no task'}).")
        self.cfg, self.info = cfg, info

    def defaults(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        """Values for config keys left as None, chosen for this data (dotted keys)."""
        return {}

    def preprocessing(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        """Plain values that turn a decoded image into model input at eval time
        (stored in the checkpoint; used by predict, explain, serve and export)."""
        raise NotImplementedError

    # -- data -------------------------------------------------------------------------
    def loader(self, split: Any, cfg: Config, info: DatasetInfo, train: bool) -> Loader:
        raise NotImplementedError

    def to_device(self, batch: Any, device: torch.device) -> Any:
        """Default: a tuple of tensors (images, targets), each moved."""
        return tuple(t.to(device, non_blocking=True) for t in batch)

    def batch_size_of(self, batch: Any) -> int:
        return len(batch[0])

    def model_input(self, images: list[torch.Tensor], preprocess: dict[str, Any]) -> torch.Tensor:
        """uint8 C x H x W images -> the eval-time model input N x C x h x w (float). Default:
        resized to `preprocess["size"]` and normalised with its mean/std, as in training."""
        from cnnkit.data.transforms import resize_uint8, to_model_input

        return to_model_input(torch.stack([resize_uint8(i, preprocess["size"]) for i in images]), preprocess)

    # -- model ------------------------------------------------------------------------
    def build_model(self, cfg: Config, info: DatasetInfo) -> nn.Module:
        """Default: the registered model `model.name` with num_classes outputs for a square input
        of `data.image_size` (kwargs: dropout, attention and `model_kwargs`)."""
        from cnnkit.models import build_model

        return build_model(cfg.model.name, num_classes=info.num_classes, in_channels=info.channels,
                           image_size=image_side(cfg.data.image_size or info.image_size)[0],
                           dropout=cfg.model.dropout, attention=cfg.model.attention, **self.model_kwargs(cfg))

    def model_kwargs(self, cfg: Config) -> dict[str, Any]:
        """`model.kwargs` meant for the model builder (a task may keep some for itself)."""
        return dict(cfg.model.kwargs)

    # -- steps ------------------------------------------------------------------------
    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss (a scalar) and its named parts for logging."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: Any) -> Any:
        """Eval-mode predictions for a batch, in the form `new_metric().update` takes."""
        raise NotImplementedError

    def new_metric(self, info: DatasetInfo) -> Metric:
        raise NotImplementedError

    # -- one input (cnnkit predict) ---------------------------------------------------
    def predict_one(self, model: nn.Module, x: torch.Tensor, image: torch.Tensor, **options: Any) -> Any:
        """The prediction for one input: `x` is `model_input([image])` on the model's device,
        `image` the decoded uint8 C x H x W; the result (on the CPU) goes to `record` and `draw`."""
        raise NotImplementedError

    def record(self, prediction: Any, image: torch.Tensor, meta: dict[str, Any], index: int,
               **options: Any) -> dict[str, Any]:
        """JSON-able fields for one input (`index` counts inputs from 1; `meta` is the checkpoint's)."""
        raise NotImplementedError

    def draw(self, image: torch.Tensor, prediction: Any, meta: dict[str, Any], name: str,
             **options: Any) -> list[Drawing]:
        """Pictures of one prediction (`name`: the input's file name)."""
        return []

    def describe(self, record: dict[str, Any], **options: Any) -> str:
        """One line of plain text for one `record` in `cnnkit predict`'s table (`--json` prints the
        record itself); `options` are the predict options the user gave (classification: `top_k`,
        the classes listed). Default: its numbers as "key value" ("value 6.832")."""
        return ", ".join(f"{k} {v:.4g}" for k, v in record.items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool)) or "-"

    def result_files(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """JSON files written once per predict call into the save directory, by file name."""
        return {}

    # -- outputs ----------------------------------------------------------------------
    def plots(self, run_dir: Path, model: nn.Module, bundle: DataBundle, device: torch.device,
              test_metrics: dict[str, Any]) -> list[Path]:
        """Task-specific pictures written after training (confusion matrix, sample grids)."""
        return []
