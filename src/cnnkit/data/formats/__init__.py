"""On-disk formats, one module each: reader (`FORMATS`) and writer (`WRITERS`) in `data/registry.py`.

Classification: `idx`, `folders` (class folders, CSV). Boxes: `coco`, `yolo`, `voc`, all
loaded through `box_scan`. Masks: `mask_folder`, `voc_seg`. Text/SMILES: `sequence`. Importing the package
registers them all; equal priorities are tried in this import order.
"""
from cnnkit.data.formats import idx, folders, coco, yolo, voc, mask_folder, voc_seg, sequence  # noqa: F401  registers

__all__ = ["idx", "folders", "coco", "yolo", "voc", "mask_folder", "voc_seg", "sequence"]
