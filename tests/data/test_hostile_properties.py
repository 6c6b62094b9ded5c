"""Property-based check of every data reader against hostile files (issue 15).

Each reader starts from a small valid set of its format; hypothesis mutates it (random bytes,
truncation, JSON / YAML / XML / CSV values of the wrong type or size, paths leaving the set) and
`build_data` and `cnnkit data inspect` must either load valid samples or raise CnnkitError naming
the set — never another exception, a hang or unbounded memory. The properties run in ONE
subprocess that, after the imports, caps its address space at 2 GiB more than the libraries map
(`resource.setrlimit(RLIMIT_AS)`: a runaway allocation is a MemoryError, reported as a failure)
and arms a per-call alarm (a hang is a failure); example counts are bounded so the whole suite
stays well under a minute on one core.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EXAMPLES = int(os.environ.get("CNNKIT_HOSTILE_EXAMPLES", "25"))  # per reader
CALL_SECONDS = 10  # one build_data or inspect call on a handful of 16x16 images


def test_every_reader_survives_hostile_files_under_memory_and_time_limits():
    pytest.importorskip("hypothesis")
    env = {**os.environ, "CNNKIT_OFFLINE": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, __file__], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    assert done.stdout.count("reader ok") == len(READERS), done.stdout


# ---- small valid sets, one per format ----------------------------------------------------------------
def _png(path: Path, value: int, size=(16, 16), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(np.full(shape, value, np.uint8), mode).save(path)


def make_coco(root: Path) -> Path:
    images, anns = [], []
    for i in range(6):
        _png(root / "images" / f"{i}.png", 30 * i)
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": 16, "height": 16})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1 + i % 2, "bbox": [2, 2, 8, 8], "iscrowd": 0,
                     "area": 64, "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]]})
    anns[0]["segmentation"] = {"size": [16, 16], "counts": [34, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 78]}
    data = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    (root / "instances.json").write_text(json.dumps(data))
    return root


def make_yolo(root: Path) -> Path:
    for i in range(6):
        _png(root / "images" / "train" / f"{i}.png", 30 * i)
        (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "train" / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.4 0.4\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/train\nnames:\n  0: a\n  1: b\n")
    return root


def make_voc(root: Path) -> Path:
    for i in range(6):
        _png(root / "JPEGImages" / f"{i}.png", 30 * i)
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{i}.xml").write_text(
            f"<annotation><filename>{i}.png</filename><size><width>16</width><height>16</height></size>"
            f"<object><name>{'ab'[i % 2]}</name><difficult>0</difficult><bndbox><xmin>2</xmin><ymin>2</ymin>"
            "<xmax>10</xmax><ymax>10</ymax></bndbox></object></annotation>")
    return root


def make_masks(root: Path) -> Path:
    for i in range(6):
        _png(root / "images" / f"{i}.png", 30 * i)
        mask = np.zeros((16, 16), np.uint8)
        mask[2:10, 2:10] = 1 + i % 2
        (root / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask, "L").save(root / "masks" / f"{i}.png")
    return root


def make_voc_seg(root: Path) -> Path:
    make_masks(root)
    (root / "images").rename(root / "JPEGImages")
    (root / "masks").rename(root / "SegmentationClass")
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("0\n1\n2\n3\n")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("4\n5\n")
    (root / "classes.txt").write_text("background\na\nb\n")
    return root


def make_csv(root: Path) -> Path:
    for i in range(6):
        _png(root / f"{i}.png", 30 * i, mode="L")
    (root / "labels.csv").write_text("path,label\n" + "".join(f"{i}.png,{i % 2}\n" for i in range(6)))
    return root


def make_folders(root: Path) -> Path:
    for i in range(6):
        _png(root / "ab"[i % 2] / f"{i}.png", 30 * i, mode="L")
    return root


def make_idx(root: Path) -> Path:
    root.mkdir(parents=True)
    images, labels = np.arange(6 * 4 * 4, dtype=np.uint8).reshape(6, 4, 4), np.array([0, 1] * 3, np.uint8)
    for kind, arr, tag in (("images", images, "idx3"), ("labels", labels, "idx1")):
        body = bytes([0, 0, 8, arr.ndim]) + np.array(arr.shape, ">u4").tobytes() + arr.tobytes()
        (root / f"train-{kind}-{tag}-ubyte.gz").write_bytes(gzip.compress(body))
    return root


# reader -> (maker, the files hypothesis mutates (relative), how they are mutated)
READERS = {
    "coco": (make_coco, ["instances.json"], "json"),
    "yolo": (make_yolo, ["data.yaml", "labels/train/0.txt"], "text"),
    "voc": (make_voc, ["Annotations/0.xml", "Annotations/1.xml"], "text"),
    "mask-folder": (make_masks, ["masks/0.png", "images/1.png"], "bytes"),
    "voc-seg": (make_voc_seg, ["ImageSets/Segmentation/train.txt", "SegmentationClass/0.png"], "text"),
    "csv": (make_csv, ["labels.csv"], "text"),
    "class-folders": (make_folders, ["a/0.png", "b/1.png"], "bytes"),
    "idx": (make_idx, ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"], "gzip"),
}


# ---- the properties (run by the subprocess below) ----------------------------------------------------
def _strategies():
    from hypothesis import strategies as st

    hostile_text = st.sampled_from(["../../../../../../etc/passwd", "/etc/passwd", "", "nan", "-1", "1e400",
                                    "100000", str(10**12), "!!python/object:os.system", "[" * 300, "\x00\xff"])
    scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**13, max_value=10**13),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), hostile_text)
    values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                          st.dictionaries(st.text(max_size=6), kids, max_size=3)),
                          max_leaves=8)
    return st, hostile_text, values


def _json_paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _json_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _json_paths(v, prefix + (i,))


def _mutate_json(data, draw, st, values):
    paths = list(_json_paths(data))[1:]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, (dict, list)):
            try:
                parent[path[-1]] = draw(values)
            except (IndexError, KeyError, TypeError):
                pass
    return json.dumps(data, allow_nan=True).encode()


def _mutate_masks(data, draw, st) -> bytes:
    """COCO masks pycocotools would decode: RLE sizes and counts, polygons — where a lie used to crash it."""
    side = st.integers(-2, 10**6) | st.sampled_from([16, 15, 17, 0])
    rle = st.fixed_dictionaries({"size": st.lists(side, min_size=0, max_size=3),
                                 "counts": st.lists(st.integers(-10, 10**9) | st.sampled_from([8, 16, 34]), max_size=20)
                                 | st.text(st.characters(min_codepoint=32, max_codepoint=130), max_size=30)})
    poly = st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**12, 10**12),
                             min_size=0, max_size=12), min_size=1, max_size=3)
    for _ in range(draw(st.integers(1, 3))):
        ann = data["annotations"][draw(st.integers(0, len(data["annotations"]) - 1))]
        ann["segmentation"] = draw(rle | poly)
        ann["iscrowd"] = draw(st.sampled_from([0, 1]))
    return json.dumps(data, allow_nan=True).encode()


def _mutate_bytes(raw: bytes, draw, st) -> bytes:
    how = draw(st.sampled_from(["flip", "truncate", "insert", "random"]))
    if how == "random":
        return draw(st.binary(max_size=200))
    if how == "truncate":
        return raw[:draw(st.integers(0, max(len(raw) - 1, 0)))]
    pos = draw(st.integers(0, max(len(raw) - 1, 0)))
    chunk = draw(st.binary(min_size=1, max_size=16))
    return raw[:pos] + chunk + raw[pos + (len(chunk) if how == "flip" else 0):]


def _mutate_text(raw: bytes, draw, st, hostile_text) -> bytes:
    """Replace a token (a word, number or tag text) by a hostile one, or fall back to byte mutation."""
    text = raw.decode("utf-8", errors="replace")
    tokens = [m for m in __import__("re").finditer(r"[\w./-]+", text)]
    if not tokens or draw(st.booleans()):
        return _mutate_bytes(raw, draw, st)
    for _ in range(draw(st.integers(1, 3))):
        tokens = [m for m in __import__("re").finditer(r"[\w./-]+", text)] or tokens
        m = draw(st.sampled_from(tokens))
        text = text[:m.start()] + draw(hostile_text) + text[m.end():]
    return text.encode("utf-8", errors="replace")


def _mutate_gzip(raw: bytes, draw, st) -> bytes:
    body = gzip.decompress(raw)
    if draw(st.booleans()):  # the header's dims and magic, where a lie costs memory
        head = bytearray(body[:16])
        pos = draw(st.integers(0, len(head) - 1))
        head[pos] = draw(st.integers(0, 255))
        body = bytes(head) + body[16:]
        return gzip.compress(body)
    return _mutate_bytes(raw if draw(st.booleans()) else gzip.compress(body), draw, st)


def _check(root: Path, arg: Path, what: str) -> None:
    """build_data then inspect: valid samples, or a CnnkitError naming the set; anything else fails."""
    from cnnkit.config import Config
    from cnnkit.data import build_data
    from cnnkit.data.commands import inspect
    from cnnkit.errors import CnnkitError

    cfg = Config()
    cfg.data.name = str(arg)
    cfg.data.max_bad = 100
    for call in (lambda: _samples(build_data(cfg)), lambda: inspect(str(arg), cfg)):
        signal.alarm(CALL_SECONDS)
        try:
            call()
        except CnnkitError as e:
            assert str(root) in str(e), f"{what}: the sentence does not name the set: {e}"
        finally:
            signal.alarm(0)


def _samples(bundle) -> None:
    """Decode every sample a loaded bundle hands the loaders (images, class masks, instance masks through
    pycocotools): a file may turn out unreadable (BadImage / BadMask, which the loaders skip and list), but
    nothing else may happen — in particular no mask that pycocotools cannot decode safely."""
    from cnnkit.data.decode import BadImage, read_image
    from cnnkit.data.detection import DetectionSplit
    from cnnkit.data.segmentation import BadMask, SegFileSplit

    for name in ("train", "val", "test"):
        split = bundle.split(name)
        for i in range(len(split)):
            try:
                if isinstance(split, DetectionSplit):
                    split.image(i)
                    split.target(i, masks=True)
                elif isinstance(split, SegFileSplit):
                    read_image(split.image_paths[i])
                    split.mask(i)
                elif hasattr(split, "paths"):
                    read_image(split.paths[i])
            except (BadImage, BadMask):
                continue


def _property(reader: str, base: Path):
    from hypothesis import HealthCheck, given, settings

    st, hostile_text, values = _strategies()
    maker, files, kind = READERS[reader]

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def prop(data):
        work = Path(tempfile.mkdtemp(dir=base))
        root = work / "set"
        shutil.copytree(base / "valid", root)
        name = data.draw(st.sampled_from(files))
        f = root / name
        raw = f.read_bytes()
        if kind == "json" and data.draw(st.booleans()):
            new = _mutate_json(json.loads(raw), data.draw, st, values)
        elif kind == "json" and data.draw(st.booleans()):
            new = _mutate_masks(json.loads(raw), data.draw, st)
        elif kind in ("json", "text"):
            new = _mutate_text(raw, data.draw, st, hostile_text)
        elif kind == "gzip":
            new = _mutate_gzip(raw, data.draw, st)
        else:
            new = _mutate_bytes(raw, data.draw, st)
        f.write_bytes(new)
        arg = root / "labels.csv" if reader == "csv" else root
        try:
            _check(root, arg, f"{reader}: {name} = {new[:300]!r}")
        finally:
            shutil.rmtree(work, ignore_errors=True)

    return prop


def _alarm(signum, frame):
    raise TimeoutError(f"a reader call took more than {CALL_SECONDS} s")


def main() -> None:
    import resource

    import cnnkit.data  # noqa: F401 - the libraries are mapped before the limit is set
    import cnnkit.data.commands  # noqa: F401
    import pycocotools.mask  # noqa: F401

    vm = int(Path("/proc/self/status").read_text().split("VmSize:")[1].split()[0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + 2 * 1024**3, vm + 2 * 1024**3))
    signal.signal(signal.SIGALRM, _alarm)
    with tempfile.TemporaryDirectory() as tmp:
        for reader, (maker, _, _) in READERS.items():
            base = Path(tmp) / reader
            maker(base / "valid")
            _property(reader, base)()
            print("reader ok", reader, flush=True)


if __name__ == "__main__":
    os.environ.setdefault("CNNKIT_OFFLINE", "1")
    sys.stdout = io.TextIOWrapper(sys.stdout.buffer, line_buffering=True)
    main()
