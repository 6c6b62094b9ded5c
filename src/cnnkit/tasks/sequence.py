"""What the two sequence tasks (`seq_classify`, `seq_regress`) share: tokens in, one answer per string.

The data's `info.extra["sequence"]` (tokenizer, vocabulary built on the training split, max_length,
whether the strings are SMILES, the regression target's mean/std) is stored in the checkpoint as
`preprocess["sequence"]`, so predict/eval/explain rebuild the same `Encoder` from it without data.
`predict_inputs` is the predict loop for strings (the engine's Predictor hands inputs to it when a
task has one): literal strings and files of them (.txt and .smi: one per line; .csv: the input
column); an empty or (for SMILES models) unparsable string is one sentence naming its line, and
every other input is still predicted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit.config import Config
from cnnkit.data.base import DatasetInfo
from cnnkit.errors import CnnkitError
from cnnkit.data.sequence.loader import SequenceLoader, tta_variants
from cnnkit.data.sequence.tokenize import Encoder
from cnnkit.tasks.base import Task

TEXT_SUFFIXES = (".txt", ".smi", ".csv")


class SequenceTask(Task):
    output = "sequence"  # explain/sequence.py handles these models, not the image attribution path
    target = "sequence"
    reads = "text"
    encoder: Encoder | None = None

    def num_outputs(self, info: DatasetInfo) -> int:
        raise NotImplementedError

    # -- configuration ----------------------------------------------------------------
    def setup(self, cfg: Config, info: DatasetInfo) -> None:
        super().setup(cfg, info)
        seq = self.sequence(info)
        self.encoder = Encoder(seq["vocab"], seq["tokenizer"], seq["max_length"])

    @staticmethod
    def sequence(info: DatasetInfo) -> dict[str, Any]:
        if "sequence" not in info.extra:
            raise CnnkitError(f"{info.name or 'The data'} is not text or SMILES data; sequence tasks need a CSV "
                              "with a text/smiles column, a .smi file or a text built-in.")
        return info.extra["sequence"]

    def defaults(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        n_train = int(info.extra.get("n_train", 1000))
        adam = cfg.train.optimizer == "adamw"
        picked = {
            "model.name": "textcnn",
            "train.epochs": 30 if n_train < 5_000 else 8,
            "train.batch_size": 32 if n_train < 5_000 else 64,
            "train.lr": 2e-3 if adam else 0.05,
            "train.weight_decay": 0.01 if adam else 1e-4,
            "train.label_smoothing": 0.0,
            "train.channels_last": False,
            # SMILES enumeration is opt-in (--augment light|strong): on chembl2321810's random splits, 25 epochs of
            # textcnn reached mean test R² 0.685 without it and 0.408 with every molecule re-written every epoch
            # (bench/qsar_baseline.py, 3 seeds): at this budget the model never catches up with the harder task.
            "data.augment": "none",
        }
        if not adam:  # SGD (the default optimiser) diverged on chembl2321810 without clipping: gradient norm
            # 9 -> 1e17 in 5 steps at lr 0.05 (and at 0.01); clipped to 1.0 it trained (1 epoch: val R² 0.34, as AdamW)
            picked["train.grad_clip"] = 1.0
        return picked

    def preprocessing(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        seq = dict(self.sequence(info))
        return {"size": [1, int(seq["max_length"])], "channels": 1, "sequence": seq}

    # -- data -------------------------------------------------------------------------
    def loader(self, split, cfg: Config, info: DatasetInfo, train: bool) -> SequenceLoader:
        smiles = self.sequence(info)["smiles"]
        augment = (cfg.data.augment or "none") if smiles else "none"
        return SequenceLoader(split, self.encoder, cfg.train.batch_size, train, cfg.train.seed, augment,
                              cfg.data.tta if smiles else 0)

    def build_model(self, cfg: Config, info: DatasetInfo) -> nn.Module:
        from cnnkit.models import build_model

        seq = self.sequence(info)
        return build_model(cfg.model.name, num_classes=self.num_outputs(info), in_channels=len(seq["vocab"]),
                           image_size=int(seq["max_length"]), dropout=cfg.model.dropout,
                           attention=cfg.model.attention, **self.model_kwargs(cfg))

    def forward_tta(self, model: nn.Module, batch) -> torch.Tensor:
        """The model's output for a batch; with TTA ids (a third tensor) the mean over the given string
        and its K randomised SMILES."""
        out = model(batch[0]).float()
        if len(batch) > 2:
            k = len(batch[2]) // len(batch[0])
            variants = model(batch[2]).float().view(k, *out.shape)
            out = (out + variants.sum(0)) / (k + 1)
        return out

    # -- strings (cnnkit predict) -----------------------------------------------------
    def model_input(self, texts: list[str], preprocess: dict[str, Any]) -> torch.Tensor:
        """Strings -> int64 N x L ids (padded with 0) for this checkpoint's vocabulary."""
        seq = preprocess["sequence"]
        return Encoder(seq["vocab"], seq["tokenizer"], seq["max_length"]).batch(texts)

    def describe(self, record: dict[str, Any], **options: Any) -> str:
        """"CCO -> 6.832": the string (cut at 40 characters; the file column says only where it came
        from), then the task's `answer`."""
        text = record.get("input", "")
        return f"{text if len(text) <= 40 else text[:39] + '…'} -> {self.answer(record, **options)}"

    def answer(self, record: dict[str, Any], **options: Any) -> str:
        """What the model said of one string, in a few words (`describe`)."""
        raise NotImplementedError

    def predict_inputs(self, model: nn.Module, meta: dict[str, Any], inputs: Any, save_dir: Path | None = None,
                       **options: Any) -> list[dict[str, Any]]:
        """One record per string, in input order: {"file": where, "input": the string, ...the task's
        fields}, or {"file", "input", "error"} for an empty or unparsable one (module docstring)."""
        import numpy as np

        pre = meta["preprocess"]
        seq = pre["sequence"]
        tta = int(meta["config"]["data"].get("tta") or 0) if seq["smiles"] else 0
        device = next(model.parameters()).device
        model.eval()
        records = []
        for where, text in collect_strings(inputs, seq.get("input_column", "text")):
            error = check_string(text, where, seq["smiles"])
            if error:
                records.append({"file": where, "input": text, "error": error})
                continue
            batch = (self.model_input([text], pre).to(device), None)
            if tta:
                rng = np.random.default_rng(0)
                batch += (self.model_input(tta_variants([text], tta, rng), pre).to(device),)
            with torch.no_grad():
                out = self.forward_tta(model, batch)[0].cpu()
            records.append({"file": where, "input": text, **self.record(out, None, meta, len(records) + 1, **options)})
        return records


def collect_strings(inputs: Any, column: str) -> list[tuple[str, str]]:
    """(where, string) pairs: a literal string is "<input i>" (i from 1); a .txt/.smi/.csv file gives one
    per line ("file:line"; .smi: the first field; .csv: the `column` or detected input column)."""
    from cnnkit.data.sequence.data import read_csv

    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    out: list[tuple[str, str]] = []
    for i, item in enumerate(items, start=1):
        p = Path(str(item)).expanduser()
        if isinstance(item, Path) or (p.suffix.lower() in TEXT_SUFFIXES and p.is_file()):
            if not p.is_file():
                raise CnnkitError(f"Input file {p} does not exist: give strings, or .txt/.smi/.csv files of them.")
            if p.suffix.lower() == ".csv":
                table = read_csv(p, None, need_target=False)
                out += [(f"{p}:{n.split(':')[-1]}", t) for n, t in zip(table.names, table.texts)]
                continue
            lines = p.read_text(encoding="utf-8").splitlines()
            first = lines[0].split() if lines else []
            start = 2 if p.suffix.lower() == ".smi" and first and first[0].lower() == "smiles" else 1
            for line, text in enumerate(lines[start - 1:], start=start):
                text = (text.split() or [""])[0] if p.suffix.lower() == ".smi" else text.strip()
                out.append((f"{p}:{line}", text))
        else:
            out.append((f"<input {i}>", str(item)))
    if not out:
        raise CnnkitError("No strings were given: give strings, or .txt/.smi/.csv files of them.")
    return out


def check_string(text: str, where: str, smiles: bool) -> str | None:
    """One sentence saying why `text` cannot be predicted, or None when it can."""
    place = f"line {where.rsplit(':', 1)[1]} of {where.rsplit(':', 1)[0]}" if ":" in where and not where.startswith(
        "<") else where
    if not text.strip():
        return (f"{place} is empty: give one non-empty string per line." if place != where else
                f"Input {where.strip('<>').split()[-1]} is an empty string: give a non-empty string.")
    if smiles:
        from cnnkit.data.sequence.chem import parse

        try:
            ok = parse(text) is not None
        except CnnkitError:  # no RDKit: the string is tokenised as it is
            return None
        if not ok:
            return f'{place}: "{text[:60]}" is not a valid SMILES (RDKit cannot parse it); fix or remove it.'
    return None
