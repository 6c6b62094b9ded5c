"""`cnnkit data inspect` checks (`INSPECTORS` in `data/registry.py`), one module per kind of label:
`classify` (class folders, CSV, IDX), `boxes` (COCO, YOLO, VOC), `masks` (mask folders, VOC
segmentation); all return a `report.HealthReport`. Importing the package registers them."""
from cnnkit.data.health import classify, boxes, masks  # noqa: F401  registers

__all__ = ["classify", "boxes", "masks"]
