"""tasks/boxes: the helpers detect and instance share — COCO bbox entries, the score filter of one
prediction, and the legible (one box per overlapping group) predictions of the plot grids."""
import pytest
import torch

from cnnkit.tasks import boxes, get_task


class FakeDetector(torch.nn.Module):
    """Returns fixed detections and records the thresholds it was given."""

    def __init__(self, det):
        super().__init__()
        self.det, self.thresholds = det, None

    def set_thresholds(self, score, iou):
        self.thresholds = (score, iou)

    def forward(self, images):
        return [{k: v.clone() for k, v in self.det.items()} for _ in images]


DET = {"boxes": torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 40]]),
       "labels": torch.tensor([1, 2, 0]), "scores": torch.tensor([0.5, 0.9, 0.2])}


def test_coco_bbox_is_x_y_w_h_rounded():
    assert boxes.coco_bbox(torch.tensor([0.3333, 2.0, 10.5, 7.25], dtype=torch.float64)) == [0.33, 2.0, 10.17, 5.25]


def test_predict_one_keeps_scores_from_conf_and_sets_the_detector_thresholds():
    model = FakeDetector(DET)
    x = boxes.model_input([torch.full((1, 8, 8), 255, dtype=torch.uint8)], {})
    assert x.shape == (1, 1, 8, 8) and float(x.max()) == 1.0  # float 0..1 at the image's own size
    out = boxes.predict_one(model, x, None, conf=0.3, iou=0.6)
    assert out["scores"].tolist() == pytest.approx([0.5, 0.9]) and model.thresholds == (0.05, 0.6)
    boxes.predict_one(model, x, None, conf=0.01)
    assert model.thresholds == (0.01, 0.5)


def test_legible_predictions_keep_the_best_of_overlapping_boxes_whatever_the_class():
    class Split:
        def __len__(self):
            return 3

        def image(self, i):
            return torch.zeros((1, 40, 40), dtype=torch.uint8)

    got = list(boxes.legible_predictions(FakeDetector(DET), Split(), torch.device("cpu"), count=2))
    assert [i for i, _, _ in got] == [0, 1]
    det = got[0][2]  # boxes 0 and 1 overlap (IoU 0.81): only the 0.9 one stays
    assert det["scores"].tolist() == pytest.approx([0.9, 0.2]) and det["labels"].tolist() == [2, 0]


def test_both_box_tasks_compose_the_same_helpers():
    detect, instance = get_task("detect"), get_task("instance")
    assert not isinstance(instance, type(detect))  # composition, not a subclass
    for name in ("to_device", "loss", "predict", "model_input", "predict_one", "preprocessing"):
        assert getattr(type(detect), name) is getattr(type(instance), name) is getattr(boxes, name)
