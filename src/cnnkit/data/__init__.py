"""Data: built-in sets, on-disk formats, decoding, augmentation, loaders and health reports.

Layout: `base` (the types every source hands the engine), `registry` (the name tables),
`sources` (`--data` value -> `DataBundle`), `formats/` (one module per on-disk format),
`builtin/` (the built-in sets), `health/` (`cnnkit data inspect`), `commands`
(make / convert / inspect), and the per-task sample containers and loaders: `loader`
(classification, and the one `EpochOrder`), `detection`, `segmentation`.

Importing this package registers every source, writer and inspector.
"""
from cnnkit.data.base import BadFile, DataBundle, DatasetInfo, FileSplit, TensorSplit
from cnnkit.data.registry import BUILTINS, FORMATS, INSPECTORS, WRITERS, register_format
from cnnkit.data.sources import build_data, detect_format

# Each import registers its entries; formats carry priorities, so the order only sets listing order.
from cnnkit.data import formats as _formats  # noqa: F401,E402  readers and writers
from cnnkit.data import builtin as _builtin  # noqa: F401,E402  digits, fashion-mnist, canvas sets
from cnnkit.data import health as _health  # noqa: F401,E402  inspectors

__all__ = ["BadFile", "DataBundle", "DatasetInfo", "FileSplit", "TensorSplit", "BUILTINS", "FORMATS",
           "INSPECTORS", "WRITERS", "build_data", "detect_format", "register_format"]
