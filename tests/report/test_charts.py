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


def test_undefined_ap_is_marked_n_a_not_drawn_as_a_bar(tmp_path, monkeypatch):
    import matplotlib.axes

    texts, bars = [], []
    monkeypatch.setattr(matplotlib.axes.Axes, "text", lambda self, x, y, s, *a, **k: texts.append(s))
    real_bar = matplotlib.axes.Axes.bar
    monkeypatch.setattr(matplotlib.axes.Axes, "bar",
                        lambda self, x, h, *a, **k: bars.append(list(h)) or real_bar(self, x, h, *a, **k))
    ap_bars({"cat": 0.5, "dog": None}, 0.5, tmp_path / "ap.png")
    assert texts == ["n/a"] and bars == [[0.5, 0.0]]


def test_class_names_in_any_script_draw_without_glyph_warnings(tmp_path, recwarn):
    ap_bars({"café": 0.5, "猫": 0.7}, 0.6, tmp_path / "ap.png")
    iou_bars({"background": 0.9, "猫": 0.4}, tmp_path / "iou.png", miou=0.65)
    assert not [w for w in recwarn if "Glyph" in str(w.message)]
