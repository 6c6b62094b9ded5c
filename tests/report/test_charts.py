"""report/charts: per-class bar charts draw undefined values (None) as empty bars and write a PNG."""
import numpy as np
from PIL import Image

from cnnkit.report.charts import ap_bars, iou_bars


def test_ap_bars_accept_undefined_ap_and_map(tmp_path):
    path = ap_bars({"cat": 0.5, "dog": None, "bird": 0.9}, None, tmp_path / "sub" / "ap.png")
    arr = np.asarray(Image.open(path).convert("RGB"))
    assert arr.shape[0] > 100 and arr.std() > 1


def test_iou_bars_mark_absent_classes(tmp_path):
    path = iou_bars({"background": 0.98, "a": None, "b": 0.4}, tmp_path / "iou.png", miou=0.69)
    assert Image.open(path).size[0] > 100
