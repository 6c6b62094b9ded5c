"""EpochOrder shared by every loader; classification loaders: order, shards, mixing, bad files."""
import torch
from PIL import Image

from cnnkit.data.base import FileSplit, TensorSplit
from cnnkit.data.loader import EpochOrder, classification_loader
from cnnkit.data.transforms import to_model_input

PRE = {"size": [8, 8], "mean": [0.5], "std": [0.25], "channels": 1}


def _split(n=50):
    images = torch.arange(n * 64, dtype=torch.int64).remainder(256).to(torch.uint8).view(n, 1, 8, 8)
    return TensorSplit(images, torch.arange(n) % 5)


def _labels(loader):
    return torch.cat([y for _, y in loader])


def test_order_depends_only_on_seed_and_epoch():
    a = classification_loader(_split(), PRE, 8, True, seed=1, channels=1, augment="none", hflip=False, num_classes=5)
    b = classification_loader(_split(), PRE, 8, True, seed=1, channels=1, augment="none", hflip=False, num_classes=5)
    a.set_epoch(3)
    b.set_epoch(3)
    assert torch.equal(_labels(a), _labels(b))
    b.set_epoch(4)
    first = [x for x, _ in a][0]
    assert not torch.equal(first, [x for x, _ in b][0])
    assert len(a) == 6 == len(list(a))  # drop_last in training: 50 // 8


def test_eval_loader_keeps_every_image_in_order_and_normalises():
    split = _split(10)
    loader = classification_loader(split, PRE, 4, False, seed=0, channels=1, augment="strong", hflip=True,
                                   num_classes=5)
    xs = torch.cat([x for x, _ in loader])
    assert torch.equal(_labels(loader), split.labels)
    assert torch.allclose(xs, (split.images.float() / 255 - 0.5) / 0.25)  # no augmentation at eval


def test_shards_partition_the_epoch(monkeypatch):
    seen = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        loader = classification_loader(_split(30), PRE, 100, True, 0, 1, "none", False, 5)
        loader.drop_last = False
        seen.append(loader.batches()[0])
    allidx = torch.cat(seen)
    assert sorted(allidx.tolist()) == list(range(30))


def test_mixup_gives_soft_labels():
    loader = classification_loader(_split(), PRE, 8, True, 0, 1, "none", False, 5, mixup=0.4)
    x, y = next(iter(loader))
    assert y.shape == (8, 5) and torch.allclose(y.sum(1), torch.ones(8))


def test_streaming_skips_and_reports_a_bad_file(tmp_path):
    paths = []
    for i in range(5):
        p = tmp_path / f"{i}.png"
        Image.new("L", (8, 8), color=i * 40).save(p)
        paths.append(str(p))
    (tmp_path / "3.png").write_bytes(b"")  # became empty after the listing was made
    loader = classification_loader(FileSplit(paths, [0, 1, 0, 1, 0]), PRE, 2, False, 0, 1, "none", False, 2)
    xs = torch.cat([x for x, _ in loader])
    assert xs.shape[0] == 4
    assert [b.path for b in loader.bad_files] == [str(tmp_path / "3.png")]
    expected = to_model_input(torch.full((1, 1, 8, 8), 80, dtype=torch.uint8), PRE)
    assert torch.allclose(xs[2], expected[0])


def test_epoch_order_is_the_seeded_permutation_sharded(rank1_of_2_order):
    n, seed, epoch, want = rank1_of_2_order
    ref = EpochOrder(n, 4, shuffle=True, seed=seed, drop_last=True)
    ref.set_epoch(epoch)
    assert torch.cat(ref.batches()).tolist() == want and len(ref) == 2
