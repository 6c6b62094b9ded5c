"""Pascal VOC segmentation layout (format "voc-seg", task segment): reader and the "voc-seg" writer.

    ROOT/JPEGImages/<id>.jpg                  (any image type; a VOCdevkit/VOC20xx folder is accepted too)
    ROOT/SegmentationClass/<id>.png           palette PNGs: index = class, 255 = void (ignored)
    ROOT/ImageSets/Segmentation/{train,val,test}.txt   ids per subset (optional: without them
                                              every mask is one pool, carved by data.split_seed)
    ROOT/classes.txt (optional)               class names; otherwise VOC's 21 names when the mask values
                                              fit them (gaps in 1..20, or all of them), else "background",
                                              "1", .. as found (a custom set numbered 1..k; binary 0/255,
                                              0/128.. masks): one note says which (mask_folder.mask_reading)

A VOC root may also hold detection boxes (Annotations/). This reader claims the folder
ahead of the detection VOC reader when SegmentationClass/ exists, and hands it back to
that reader (`FORMATS["voc"]`) unless the task asked is `segment` or there are no
Annotations/ — so `--task segment` picks masks and plain VOC detection keeps working.
A subset without a test list gets its test images carved out of train: VOC's test masks
are not public, and val picks the best epoch, so it cannot also be the test.
"""
from __future__ import annotations

from pathlib import Path

from cnnkit.config import Config
from cnnkit.data.base import BadFile, DataBundle
from cnnkit.data.containment import inside
from cnnkit.data.decode import data_files, hidden_name, text_lines
from cnnkit.data.formats.mask_folder import finish, read_classes
from cnnkit.data.registry import FORMATS, WRITERS, register_format
from cnnkit.data.segmentation import SegFileSplit, samples, segment_view, write_mask

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]
DEFAULT_NAME = "Pascal VOC's"  # whose the default class names are, for notes
SPLITS = ("train", "val", "test")


def voc_root(path: Path) -> Path | None:
    """The VOC folder itself, or the single VOC20xx inside a VOCdevkit."""
    def ok(p: Path) -> bool:
        return (p / "SegmentationClass").is_dir() and (p / "JPEGImages").is_dir()

    if not path.is_dir():
        return None
    if ok(path):
        return path
    inner = [p for p in sorted(path.glob("VOC*")) if not hidden_name(p.name) and ok(p)]
    return inner[0] if len(inner) == 1 else None


def detect(path: Path) -> bool:
    return voc_root(path) is not None


def _image_for(root: Path, stem: str, by_stem: dict[str, Path]) -> Path | None:
    p = root / "JPEGImages" / f"{stem}.jpg"
    return p if p.is_file() else by_stem.get(stem)


def scan(root: Path, allow_outside: bool = False) -> tuple[dict[str, SegFileSplit], list[BadFile]]:
    """Subset -> (image, mask) pairs named by the ImageSets lists (or all masks as "all"); missing files as BadFiles.
    An id naming a file outside `root` is refused (AnnotationError) unless `allow_outside` (data.allow_outside_root)."""
    masks_dir, lists = root / "SegmentationClass", root / "ImageSets" / "Segmentation"
    by_stem = {p.stem: p for p in data_files(root / "JPEGImages", recursive=False)}
    ids: dict[str, list[str]] = {}
    for s in SPLITS:
        f = lists / f"{s}.txt"
        if f.is_file():
            ids[s] = [line.split()[0] for line in text_lines(f)]
            for stem in ids[s]:
                inside(root, Path("SegmentationClass") / f"{stem}.png", allow=allow_outside, source=f, what="id",
                       shown=repr(stem))
    if not ids:
        ids["all"] = sorted(p.stem for p in data_files(masks_dir, (".png",), recursive=False))
    found, bad = {}, []
    for s, stems in ids.items():
        imgs, msks = [], []
        for stem in stems:
            img, msk = _image_for(root, stem, by_stem), masks_dir / f"{stem}.png"
            if img is None:
                bad.append(BadFile(str(root / "JPEGImages" / f"{stem}.jpg"), f"listed in {s}.txt but missing"))
            elif not msk.is_file():
                if s != "test":  # VOC's own test list has no public masks: not a fault
                    bad.append(BadFile(str(msk), f"listed in {s}.txt but the mask is missing"))
            else:
                imgs.append(str(img))
                msks.append(str(msk))
        if imgs:
            found[s] = SegFileSplit(imgs, msks, names=list(imgs))
    return found, bad


def wants_detection(path: Path, cfg: Config) -> bool:
    """True when the folder should go to the detection VOC reader instead (see module docstring):
    it has Annotations/ and the task asked is not the one this reader is registered for."""
    return (path / "Annotations").is_dir() and cfg.task != FORMATS["voc-seg"].task and "voc" in FORMATS


@register_format("voc-seg", task="segment", detect=detect, priority=25)
def load(path: Path, cfg: Config) -> DataBundle:
    root = voc_root(path) or path
    if wants_detection(root, cfg):
        return FORMATS["voc"].load(path, cfg)
    found, bad = scan(root, cfg.data.allow_outside_root)
    return finish(root, found, bad, read_classes(root), cfg, "voc-seg", default=list(VOC_CLASSES),
                  default_name=DEFAULT_NAME)


@WRITERS.register("voc-seg")
def write_voc_seg(bundle: DataBundle, out: Path) -> None:
    """JPEGImages, SegmentationClass (palette PNG), ImageSets/Segmentation lists, classes.txt.

    Images are written as PNG (lossless, as the detection VOC writer does): reading the folder back
    gives exactly the pixels the masks were drawn for; the reader finds images by id, any extension.
    """
    from PIL import Image

    bundle = segment_view(bundle)  # detection data with instance masks becomes class masks
    out = Path(out)
    (out / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (out / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    for key in SPLITS:
        stems = []
        for i, (name, image, mask) in enumerate(samples(bundle.split(key), bundle.info.channels)):
            if image is None:
                continue
            stem = Path(name).stem if name else f"{i:05d}"
            stem = stem if stem.startswith(key) else f"{key}_{stem}"  # one JPEGImages folder for all subsets
            arr = image.permute(1, 2, 0).numpy()
            Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(out / "JPEGImages" / f"{stem}.png")
            write_mask(mask, out / "SegmentationClass" / f"{stem}.png")
            stems.append(stem)
        (out / "ImageSets" / "Segmentation" / f"{key}.txt").write_text("".join(s + "\n" for s in stems))
    (out / "classes.txt").write_text("\n".join(bundle.info.classes) + "\n")
