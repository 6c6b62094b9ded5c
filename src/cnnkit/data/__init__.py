"""Data: built-in sets, on-disk formats, decoding, augmentation, loaders and health reports.

Importing this package registers every source (each module adds itself to
`BUILTINS` / `FORMATS` in `cnnkit.data.sources`).
"""
from cnnkit.data.base import BadFile, DataBundle, DatasetInfo, FileSplit, TensorSplit
from cnnkit.data.sources import BUILTINS, FORMATS, build_data, register_format

# Each import registers its sources; the order sets nothing (formats carry priorities).
from cnnkit.data import builtin as _builtin  # noqa: F401,E402  digits, fashion-mnist
from cnnkit.data import folders as _folders  # noqa: F401,E402  class folders, CSV, IDX
from cnnkit.data import canvas as _canvas  # noqa: F401,E402  digits-detect
from cnnkit.data import coco as _coco  # noqa: F401,E402
from cnnkit.data import yolo as _yolo  # noqa: F401,E402
from cnnkit.data import voc as _voc  # noqa: F401,E402
from cnnkit.data import mask_folder as _mask_folder  # noqa: F401,E402
from cnnkit.data import voc_seg as _voc_seg  # noqa: F401,E402
from cnnkit.data import seg_builtin as _seg_builtin  # noqa: F401,E402  digits-seg
from cnnkit.data import mask_health as _mask_health  # noqa: F401,E402  mask-folder / voc-seg inspectors

__all__ = ["BadFile", "DataBundle", "DatasetInfo", "FileSplit", "TensorSplit", "BUILTINS", "FORMATS",
           "build_data", "register_format"]
