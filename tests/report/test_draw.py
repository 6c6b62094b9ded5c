"""report/draw: PNG writing (bytes back equal), class colours on instance drawings, box captions, tile grids."""
import numpy as np
import torch
from PIL import Image

from cnnkit.report.draw import (GT_COLOR, PRED_COLOR, TILE, class_colors, draw_boxes, draw_instances, save_png,
                                tile_grid)


def test_save_png_round_trips_rgb_gray_and_class_masks(tmp_path):
    rgb = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8)
    gray = torch.randint(0, 256, (1, 5, 7), dtype=torch.uint8)
    mask = torch.tensor([[0, 1, 2], [255, 1, 0]], dtype=torch.uint8)
    assert np.array_equal(np.asarray(Image.open(save_png(rgb, tmp_path / "a" / "rgb.png"))),
                          rgb.permute(1, 2, 0).numpy())
    assert np.array_equal(np.asarray(Image.open(save_png(gray, tmp_path / "gray.png"))), gray[0].numpy())
    im = Image.open(save_png(mask, tmp_path / "mask.png"))
    assert im.mode == "P" and np.array_equal(np.asarray(im), mask.numpy())  # values stay the class indices


def test_drawing_paints_each_mask_in_its_class_colour():
    """Every object's mask is visibly tinted with its box's class colour (torchvision's default
    palette starts at black, which hid the top-scoring mask); the tag keeps the caption legible."""
    img = torch.full((1, 32, 32), 200, dtype=torch.uint8)
    masks = torch.zeros(2, 32, 32, dtype=torch.bool)
    masks[0, 4:12, 4:12] = True
    masks[1, 18:30, 18:30] = True
    det = {"boxes": torch.tensor([[4.0, 4, 12, 12], [18, 18, 30, 30]]), "labels": torch.tensor([0, 3]),
           "scores": torch.tensor([0.9, 0.8]), "masks": masks}
    drawn = draw_instances(img, det, [str(i) for i in range(10)], conf=0.5)
    f = drawn.shape[-1] // 32
    assert f >= 2 and drawn.shape[0] == 3
    for (y, x), colour in zip([(9, 8), (26, 26)], class_colors([0, 3])):
        pixel = drawn[:, y * f, x * f].float()
        expected = 0.5 * 200 + 0.5 * torch.tensor(colour, dtype=torch.float)
        assert torch.allclose(pixel, expected, atol=2), (pixel, expected)
    assert class_colors([0])[0] != class_colors([3])[0]
    untouched = drawn[:, 15 * f, 2 * f]
    assert untouched.tolist() == [200, 200, 200]


def test_boxes_below_conf_are_not_drawn_and_truth_is_green():
    img = torch.zeros((1, 48, 48), dtype=torch.uint8)
    det = {"boxes": torch.tensor([[4.0, 4, 20, 20], [26, 26, 44, 44]]), "labels": torch.tensor([1, 2]),
           "scores": torch.tensor([0.9, 0.3])}
    drawn = draw_boxes(img, det, ["a", "b", "c"], conf=0.5, truth=torch.tensor([[26.0, 4, 44, 20]]))
    f = drawn.shape[-1] // 48
    red, green = torch.tensor([255, 0, 0]), torch.tensor([0, 255, 0])  # PRED_COLOR, GT_COLOR
    assert (PRED_COLOR, GT_COLOR) == ("red", "lime")
    assert torch.equal(drawn[:, 12 * f, 4 * f], red)  # left edge of the kept box
    assert drawn[:, 35 * f, 44 * f].tolist() == [0, 0, 0]  # the 0.3 box (its right edge) is not drawn
    assert torch.equal(drawn[:, 12 * f, 44 * f], green)  # right edge of the truth box


def test_tile_grid_brings_tiles_to_one_size(tmp_path):
    tiles = [torch.full((3, TILE, TILE), 10, dtype=torch.uint8), torch.full((3, 100, 60), 20, dtype=torch.uint8)]
    arr = np.asarray(Image.open(tile_grid(tiles, tmp_path / "g.png", nrow=2)))
    assert arr.shape == (TILE + 8, 2 * TILE + 12, 3)  # make_grid: 4 px padding around and between
    assert arr[4 + TILE // 2, 8 + TILE + TILE // 2].tolist() == [20, 20, 20]
