"""Pictures of predictions: images with boxes, masks and captions drawn on, the grids of a run's
`plots/`, and the one place a picture tensor becomes a PNG (`save_png`).

Drawing is torchvision's (`draw_bounding_boxes`, `draw_segmentation_masks`, `make_grid`) on
uint8 C x H x W tensors; the image / truth / prediction rows of segmentation are matplotlib
(saved by `cnnkit.report.plots`' figure helper). Nothing here runs a model: tasks predict,
this module draws what they predicted.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

GT_COLOR, PRED_COLOR = "lime", "red"
TILE = 288  # side of a grid tile and the smallest side a drawn image is enlarged to


def save_png(img: torch.Tensor, path: str | Path) -> Path:
    """uint8 1 or 3 x H x W -> PNG; an H x W class-index mask -> a palette PNG whose values stay
    the indices (`cnnkit.data.segmentation.write_mask`). Parent folders are created.

    Pillow writes them: torchvision 0.29 deprecates `torchvision.io.write_png` (a DeprecationWarning
    on every call, "will be removed")."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = img.detach().cpu().to(torch.uint8)
    if arr.ndim == 2:
        from cnnkit.data.segmentation import write_mask

        write_mask(arr, path)
    else:
        Image.fromarray(arr[0].numpy() if arr.shape[0] == 1 else arr.permute(1, 2, 0).numpy()).save(path)
    return path


# ---- boxes and instance masks ------------------------------------------------------------
def _upscale(img: torch.Tensor, min_side: int = TILE) -> tuple[torch.Tensor, int]:
    """Small images are enlarged by an integer factor (nearest) so labels stay legible."""
    f = max(1, -(-min_side // min(img.shape[-2:])))
    img = img.repeat_interleave(f, -2).repeat_interleave(f, -1) if f > 1 else img
    return (img.expand(3, -1, -1) if img.shape[0] == 1 else img[:3]).contiguous(), f


def _font(captions: list[str]) -> str | None:
    """A scalable font file with every character of `captions` (`report.fonts`: class names in CJK
    too), else matplotlib's bundled DejaVu Sans (PIL's default font is tiny)."""
    try:
        from matplotlib import font_manager

        from cnnkit.report.fonts import font_file_for

        return font_file_for(captions) or font_manager.findfont("DejaVu Sans", fallback_to_default=True)
    except Exception:  # noqa: BLE001 - drawing without a font only loses the label size
        return None


def class_colors(labels: torch.Tensor | list[int]) -> list[tuple[int, int, int]]:
    """A saturated colour per class index: matplotlib's tab10 (tab20 past ten classes).

    tab10's gray goes last: on gray-scale images it would vanish."""
    from matplotlib import colormaps

    labels = [int(c) for c in labels]
    many = max(labels, default=0) >= 10
    cmap = colormaps["tab20" if many else "tab10"]
    order = list(range(20)) if many else [0, 1, 2, 3, 4, 5, 6, 8, 9, 7]
    return [tuple(int(255 * v) for v in cmap(order[c % len(order)])[:3]) for c in labels]


def draw_detections(img: torch.Tensor, boxes: torch.Tensor, captions: list[str], color,
                    extra: tuple[torch.Tensor, str] | None = None,
                    masks: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 3 x H' x W' image with `boxes` (and optionally `extra` = (boxes, color)) drawn.

    `color` is one colour or one per box; `masks` (bool N x H x W, one per box) are painted
    under the boxes in the boxes' colours. Captions sit on a filled tag so they stay legible
    over any background."""
    from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

    canvas, f = _upscale(img)
    colors = color if isinstance(color, list) else [color] * len(boxes)
    if masks is not None and len(masks):
        big = masks.bool().repeat_interleave(f, -2).repeat_interleave(f, -1)
        canvas = draw_segmentation_masks(canvas, big, alpha=0.5, colors=colors)
    if extra is not None and len(extra[0]):
        canvas = draw_bounding_boxes(canvas, extra[0].float() * f, colors=extra[1], width=1)
    if len(boxes):
        font = _font(captions)
        size = {"font": font, "font_size": max(11, min(canvas.shape[-2:]) // 24)} if font else {}
        canvas = draw_bounding_boxes(canvas, boxes.float() * f, labels=captions, colors=colors, width=2,
                                     fill_labels=True, label_colors="white", **size)
    return canvas


def _captions(labels: torch.Tensor, scores: torch.Tensor, classes: Sequence[str]) -> list[str]:
    return [f"{classes[int(lab)]} {float(s):.2f}" for lab, s in zip(labels, scores)]


def draw_boxes(img: torch.Tensor, det: dict[str, torch.Tensor], classes: Sequence[str], conf: float = 0.0,
               truth: torch.Tensor | None = None) -> torch.Tensor:
    """Predicted boxes scoring >= conf with "class score" captions (red); `truth` boxes thin green."""
    keep = det["scores"] >= conf
    extra = None if truth is None else (truth, GT_COLOR)
    return draw_detections(img, det["boxes"][keep], _captions(det["labels"][keep], det["scores"][keep], classes),
                           PRED_COLOR, extra)


def draw_instances(img: torch.Tensor, det: dict[str, torch.Tensor], classes: Sequence[str],
                   conf: float = 0.3) -> torch.Tensor:
    """Masks and boxes in their class's colour, captions "class score" on top.

    `det["masks"]` is bool (k, H, W). Drawn from the lowest score up, so where masks overlap
    the most confident one shows."""
    det = {k: v.cpu() for k, v in det.items()}
    order = torch.argsort(det["scores"])
    keep = order[det["scores"][order] >= conf]
    labels, scores = det["labels"][keep], det["scores"][keep]
    return draw_detections(img, det["boxes"][keep], _captions(labels, scores, classes), class_colors(labels),
                           masks=det["masks"][keep])


def tile_grid(tiles: list[torch.Tensor], path: Path, nrow: int = 4) -> Path:
    """uint8 3 x H x W tiles, each brought to TILE x TILE, in one PNG (white gaps)."""
    from torchvision.utils import make_grid

    same = []
    for tile in tiles:
        if tile.shape[-2:] != (TILE, TILE):  # make_grid needs equal tiles
            tile = torch.nn.functional.interpolate(tile[None].float(), size=(TILE, TILE))[0].to(torch.uint8)
        same.append(tile)
    grid = make_grid(same, nrow=nrow, padding=4, pad_value=255) if same else torch.zeros((3, 8, 8), dtype=torch.uint8)
    return save_png(grid, path)


# ---- semantic segmentation ---------------------------------------------------------------
def mask_overlay(img: torch.Tensor, mask: torch.Tensor, num_classes: int) -> torch.Tensor:
    """uint8 3 x H x W image with each non-background class of the H x W `mask` in its palette colour."""
    from cnnkit.data.segmentation import overlay

    return overlay(img if img.shape[0] == 3 else img.expand(3, -1, -1), mask, num_classes)


def segmentation_grid(images: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], preds: Sequence[torch.Tensor],
                      classes: Sequence[str], path: Path, title: str = "") -> Path:
    """Rows of image / ground truth / prediction (uint8 C x H x W images, H x W class masks),
    with a legend of the class colours."""
    from cnnkit.report.plots import save_figure  # first: it selects matplotlib's Agg backend

    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from cnnkit.data.segmentation import colorize

    fig, axes = plt.subplots(len(images), 3, figsize=(6, 2 * len(images)), squeeze=False)
    for r, (img, mask, pred) in enumerate(zip(images, masks, preds)):
        shown = img.expand(3, -1, -1) if img.shape[0] == 1 else img
        for c, (pic, name) in enumerate([(shown, "image"), (colorize(mask), "ground truth"),
                                         (colorize(pred), "prediction")]):
            axes[r][c].imshow(pic.permute(1, 2, 0).numpy())
            axes[r][c].set_axis_off()
            if r == 0:
                axes[r][c].set_title(name)
    if title:
        fig.suptitle(title)
    pal = colorize(torch.arange(len(classes), dtype=torch.uint8)[None]).permute(1, 2, 0)[0].float() / 255
    fig.legend(handles=[Patch(color=pal[k].tolist(), label=c) for k, c in enumerate(classes)],
               loc="lower center", ncol=min(6, len(classes)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.02 * (len(classes) // 6), 1, 1))
    return save_figure(fig, path)
