"""Console tables: undefined metrics read "n/a" with one line saying why; class names print as written."""
import numpy as np
from PIL import Image

from cnnkit.cli import main
from cnnkit.report.console import metrics_table


def test_undefined_metrics_read_n_a_with_one_reason(capsys):
    metrics = {"map": None, "map_50": None, "map_large": None, "fp_per_image": 2.5, "images": 6, "detections": 600,
               "note": "the split has no ground-truth boxes, so AP/AR are undefined", "data": "x", "split": "test"}
    metrics_table(metrics)
    out = capsys.readouterr().out
    assert out.count("n/a") == 4  # three table cells and the reason line
    assert "-1" not in out and "2.5000" in out
    assert [line for line in out.splitlines() if "ground-truth" in line] == [
        "n/a: the split has no ground-truth boxes, so AP/AR are undefined"]


def test_per_class_undefined_without_note(capsys):
    metrics_table({"accuracy": 0.5, "per_class": {"a": {"recall": 0.5}, "b": {"recall": None}}})
    out = capsys.readouterr().out
    assert "0.5000" in out and "n/a" in out and "nan" not in out.lower()
    assert out.splitlines()[-1].startswith("n/a: undefined")


def test_defined_metrics_print_no_reason_line(capsys):
    metrics_table({"accuracy": 0.75, "macro_f1": 0.5})
    out = capsys.readouterr().out
    assert "0.7500" in out and "n/a" not in out


def test_inspect_table_prints_class_names_as_written(tmp_path, capsys):
    for k, c in enumerate(("café", "猫", "🐶")):
        (tmp_path / c).mkdir()
        for i in range(3):
            pixels = np.random.default_rng(10 * k + i).integers(0, 255, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / c / f"{i}.png")
    main(["data", "inspect", str(tmp_path)])
    out = capsys.readouterr().out
    assert '"café": 3' in out and '"猫": 3' in out and '"🐶": 3' in out and "\\u" not in out


def test_health_notes_print_as_sentences_under_the_table(capsys):
    from cnnkit.data.health.report import HealthReport
    from cnnkit.report.console import health

    report = HealthReport(source="s", counts={"images": 3, "notes": {
        "a": "4 boxes clipped to the image border", "b": "warning: class x has no training box"}})
    health(report)
    lines = capsys.readouterr().out.splitlines()
    assert "note: 4 boxes clipped to the image border" in lines
    assert "warning: class x has no training box" in lines
    assert not [line for line in lines if "│ notes" in line]


def test_predict_rows_keep_one_line_per_input_whatever_its_name(capsys):
    from cnnkit.report.console import predictions

    records = [{"file": "odd/new\nline.png", "label": "8"}, {"file": "[red]x.png", "label": "3"},
               {"file": "tab\there.png", "error": "unreadable [bold]"}]
    predictions(records, None, lambda r: f"{r['label']} (0.9)")
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    assert len(rows) == 3
    assert "odd/new\\nline.png" in rows[0] and "[red]x.png" in rows[1]
    assert "tab\\there.png" in rows[2] and "unreadable [bold]" in rows[2]
