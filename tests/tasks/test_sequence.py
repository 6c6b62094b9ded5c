"""The sequence tasks end to end on the RDKit ChEMBL set: train, predict strings and files (bad lines are
one sentence each, the rest predicted), eval on another CSV, the vocabulary kept in the checkpoint."""
import json

import pytest
import torch

import cnnkit
from cnnkit.cli import main

pytest.importorskip("rdkit")


@pytest.fixture(scope="module")
def mol_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "chembl-textcnn"
    cnnkit.train(data="chembl2321810", model="textcnn", epochs=1, out=str(out), quiet=True, threads=1,
                 augment="none", optimizer="adamw", kwargs={"channels": 8, "embed_dim": 8})
    return out


def test_checkpoint_holds_the_training_vocabulary(mol_run):
    meta = torch.load(mol_run / "best.pt", weights_only=True)["meta"]
    seq = meta["preprocess"]["sequence"]
    assert meta["task"] == "seq_regress" and seq["tokenizer"] == "smiles" and seq["smiles"]
    assert seq["vocab"][:2] == ["<pad>", "<unk>"] and "Cl" in seq["vocab"] and "[nH]" in seq["vocab"]


def test_predict_strings_and_a_file_with_bad_lines(mol_run, tmp_path, capsys):
    smi = tmp_path / "mols.smi"
    smi.write_text("smiles name\nCCO ethanol\n\nC1CC broken\nc1ccccc1Cl\n")
    assert main(["predict", str(mol_run), "CCO", "", "[Xx]C", str(smi), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in records] == ["<input 1>", "<input 2>", "<input 3>", f"{smi}:2", f"{smi}:3",
                                            f"{smi}:4", f"{smi}:5"]
    assert records[1]["error"] == "Input 2 is an empty string: give a non-empty string."
    assert records[4]["error"].startswith(f"line 3 of {smi} is empty")
    assert records[5]["error"] == (f'line 4 of {smi}: "C1CC" is not a valid SMILES (RDKit cannot parse it); '
                                   "fix or remove it.")
    values = [r.get("value") for r in records]
    assert values[0] == pytest.approx(values[3])  # the same string, the same prediction
    assert all(isinstance(values[i], float) for i in (0, 3, 6)) and "error" in records[2]  # [Xx] is not an element


def test_unknown_tokens_at_predict_time_are_not_a_crash(mol_run):
    records = cnnkit.load(mol_run).predict(["C[Si](C)(C)C"])  # Si: not in the training vocabulary
    assert isinstance(records[0]["value"], float)


def test_eval_on_another_csv(mol_run, tmp_path, capsys):
    from cnnkit.data.builtin.chembl import read_chembl

    texts, values, _ = read_chembl()
    csv = tmp_path / "other.csv"
    csv.write_text("smiles,value\n" + "".join(f"{s},{v}\n" for s, v in zip(texts[:60], values[:60])))
    assert main(["eval", str(mol_run), "--data", str(csv), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) >= {"r2", "rmse", "mae", "spearman"} and metrics["images"] == 12  # test: 20 % of 60
    assert metrics["rmse"] > 0


def test_python_explain_takes_strings_like_the_cli(mol_run, tmp_path, capsys):
    """cnnkit.explain on a sequence run: IG per token for each string, the same numbers as `cnnkit explain`."""
    got = cnnkit.explain(str(mol_run), ["CCO", "c1ccccc1Cl"], steps=32)
    assert [g["input"] for g in got] == ["CCO", "c1ccccc1Cl"]
    assert got[1]["tokens"] == ["c", "1", "c", "c", "c", "c", "c", "1", "Cl"]
    assert len(got[1]["attributions"]) == len(got[1]["tokens"])  # completeness: tests/explain/test_sequence.py
    assert main(["explain", str(mol_run), "CCO", "c1ccccc1Cl", "--steps", "32", "--json",
                 "--save-dir", str(tmp_path)]) == 0
    cli = json.loads(capsys.readouterr().out)
    rows = cli["explanations"] if isinstance(cli, dict) and "explanations" in cli else cli
    assert pytest.approx(rows[1]["attributions"], abs=1e-6) == got[1]["attributions"]
