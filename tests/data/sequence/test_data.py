"""Users' text/SMILES files: CSV columns given or detected, float targets = regression, split folders used
as given, .smi files, and one-sentence errors."""
import pytest

from cnnkit.config import Config
from cnnkit.data import build_data
from cnnkit.errors import CnnkitError


def load(path, **keys):
    cfg = Config()
    cfg.data.name = str(path)
    for k, v in keys.items():
        cfg.set(k, v)
    return build_data(cfg)


def test_text_label_csv_is_classification_with_detected_columns(tmp_path):
    f = tmp_path / "lang.csv"
    f.write_text("text,label\n" + "".join(f"hello world {i},en\nhallo welt {i},de\n" for i in range(20)))
    b = load(f)
    assert b.info.task == "seq_classify" and b.info.classes == ["de", "en"]
    assert len(b.train) + len(b.val) + len(b.test) == 40 and len(b.test) == 8  # 20 % per class
    seq = b.info.extra["sequence"]
    assert seq["tokenizer"] == "char" and not seq["smiles"] and "h" in seq["vocab"]
    assert set(seq["vocab"]) - {"<pad>", "<unk>"} <= set("".join(b.train.texts))  # built on train only


def test_named_columns_float_target_is_regression_with_smiles_tokens(tmp_path):
    f = tmp_path / "mols.csv"
    f.write_text("id,mol,pic50\n" + "".join(f"{i},CC{'C' * (i % 5)}Cl,{5 + i / 7:.3f}\n" for i in range(30)))
    with pytest.raises(CnnkitError, match="data.columns"):
        load(f)
    b = load(f, **{"data.columns": "mol,pic50"})
    assert b.info.task == "seq_regress" and b.info.classes == []
    seq = b.info.extra["sequence"]
    assert seq["tokenizer"] == "smiles" and "Cl" in seq["vocab"]
    assert seq["target_mean"] == pytest.approx(float(b.train.targets.mean()))


def test_split_files_in_a_folder_are_used_as_given(tmp_path):
    for split, n in (("train", 12), ("val", 3), ("test", 5)):
        (tmp_path / f"{split}.csv").write_text("smiles,value\n" + "".join(f"C{'C' * i}O,{i + 0.5}\n" for i in range(n)))
    b = load(tmp_path)
    assert (len(b.train), len(b.val), len(b.test)) == (12, 3, 5)
    assert b.test.names[0] == "test.csv:2"


def test_smi_file_with_values(tmp_path):
    f = tmp_path / "m.smi"
    f.write_text("".join(f"C{'C' * i}N mol{i} {i * 0.3 + 0.1:.2f}\n" for i in range(20)))
    b = load(f)
    assert b.info.task == "seq_regress" and len(b.train) + len(b.val) + len(b.test) == 20


def test_missing_target_and_unseen_label_are_one_sentence(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("text,label\nabc,x\nabd,\n")
    with pytest.raises(CnnkitError, match="t.csv:3 has no target value"):
        load(f)
