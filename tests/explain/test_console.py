"""The rich tables print whatever a summary holds."""
from rich.console import Console

from cnnkit.explain.console import print_summary


def test_print_summary_all_sections():
    summary = {
        "task": "classify", "save_dir": "/tmp/x",
        "explanations": [{"image": "/a/b.png", "method": "ig", "layer": None, "min": -1.0, "max": 2.0, "mean": 0.1,
                          "peak": [1, 2], "completeness_gap": 0.004,
                          "target": {"kind": "class", "index": 3, "name": "3", "prob": 0.9}},
                         {"image": "", "method": "filters", "layer": "conv1", "target": {}}],
        "faithfulness": {"randomisation_threshold": 0.5, "methods": {"ig": {
            "deletion_auc": 0.1, "deletion_auc_random": 0.5, "deletion_better_than_random": 1.0,
            "insertion_auc": 0.9, "insertion_auc_random": 0.8, "insertion_better_than_random": 0.9,
            "randomisation": {"spearman": 0.7, "explains_model": False}}}},
        "worst": {"wrong": 2, "test_images": 10, "images": [{"image": "t[1]", "true": "1", "predicted": "7",
                                                            "confidence": 0.9}],
                  "confused_pairs": [{"true": "1", "predicted": "7", "count": 2}]},
    }
    console = Console(record=True, width=140)
    print_summary(summary, console)
    text = console.export_text()
    for word in ("b.png", "0.40%", "not explaining the model", "1->7 (2)", "/tmp/x"):
        assert word in text
