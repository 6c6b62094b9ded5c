"""--worst: confusion pairs against a hand count; the review needs a classifier."""
import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.explain.subject import from_model
from cnnkit.explain.worst import confused_pairs, review_worst

from .conftest import random_image, tiny_segmenter


def test_confused_pairs_match_a_hand_count():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    preds = torch.tensor([1, 1, 0, 0, 1, 1, 2, 0])
    pairs, cm = confused_pairs(labels, preds, ["a", "b", "c"])
    assert pairs[0] == {"true": "a", "predicted": "b", "count": 2}
    assert {(p["true"], p["predicted"]) for p in pairs[1:]} == {("b", "a"), ("c", "b"), ("c", "a")}
    assert cm.sum() == 8 and int(cm[0, 1]) == 2


def test_worst_needs_a_classifier(tmp_path):
    s = from_model(tiny_segmenter(), random_image(3, 8, 8))
    with pytest.raises(CnnkitError, match="classifiers"):
        review_worst(s, 3, tmp_path, {})
