"""`cnnkit explain` for sequence models: integrated gradients per token (Captum), shown as the string with
its tokens coloured (rich, in the terminal), a PNG of the coloured tokens, and for SMILES models with
RDKit present the molecule's 2-D depiction with each atom coloured by its token's attribution.

IG runs on the embedding layer (`LayerIntegratedGradients` on `model.embedding.embed`): the path goes
from the `<pad>` embedding (the zero vector) to the string's embeddings, with the string's own mask,
so it answers "what does each token add over an empty sequence of the same length". A token's score is
the sum over its embedding dimensions; the scores add up to f(x) - f(baseline) (completeness), and the
gap, |sum - (f(x) - f(baseline))| / |f(x) - f(baseline)|, is reported per string.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cnnkit.errors import CnnkitError

POSITIVE, NEGATIVE = (214, 39, 40), (31, 119, 180)  # matplotlib's tab:red / tab:blue


def is_sequence_checkpoint(source: Any) -> bool:
    """True for a run directory / checkpoint of a sequence task (its preprocess has a "sequence" entry)."""
    from cnnkit.engine.checkpoint import load_checkpoint

    try:
        return "sequence" in load_checkpoint(source)["meta"]["preprocess"]
    except (CnnkitError, KeyError, TypeError):
        return False


def token_attributions(model: torch.nn.Module, ids: torch.Tensor, target: int, steps: int = 50) -> tuple[torch.Tensor, float, float]:
    """IG scores per token (L,) for ids 1 x L and output `target`, the completeness gap (a fraction) and
    f(x) - f(baseline)."""
    from captum.attr import LayerIntegratedGradients

    model.eval()
    layer = model.embedding.embed
    lig = LayerIntegratedGradients(lambda x: model(x), layer)
    baseline = torch.zeros_like(ids)
    attr = lig.attribute(ids, baselines=baseline, target=target, n_steps=steps)
    scores = attr.sum(-1)[0].detach()
    with torch.no_grad():  # f(baseline): the <pad> embeddings under the string's own mask, as IG's path starts
        handle = layer.register_forward_hook(lambda m, i, o: torch.zeros_like(o))
        try:
            f0 = float(model(ids)[0, target])
        finally:
            handle.remove()
        fx = float(model(ids)[0, target])
    # Not Captum's convergence delta: it evaluates the model on the baseline *ids* (all <pad>, so an empty
    # mask), which is not where this path starts.
    diff = fx - f0
    return scores, abs(float(scores.sum()) - diff) / max(abs(diff), 1e-12), diff


def rgb(score: float, scale: float) -> tuple[int, int, int]:
    """White -> red for positive, white -> blue for negative scores, by |score| / scale."""
    a = min(1.0, abs(score) / scale) if scale > 0 else 0.0
    base = POSITIVE if score >= 0 else NEGATIVE
    return tuple(int(round(255 + (c - 255) * a)) for c in base)  # type: ignore[return-value]


def rich_text(tokens: list[str], scores: list[float]):
    """The string as a rich Text, each token on a background coloured by its score."""
    from rich.text import Text

    scale = max([abs(s) for s in scores] + [1e-12])
    text = Text()
    for tok, s in zip(tokens, scores):
        r, g, b = rgb(s, scale)
        text.append(tok, style=f"black on rgb({r},{g},{b})")
    return text


def tokens_png(tokens: list[str], scores: list[float], title: str, path: Path) -> Path:
    """The tokens in rows of coloured boxes (matplotlib), with a colour bar of the scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LinearSegmentedColormap, Normalize

    scale = max([abs(s) for s in scores] + [1e-12])
    per_row = 40
    rows = max(1, -(-len(tokens) // per_row))
    fig, ax = plt.subplots(figsize=(min(14, 0.32 * min(len(tokens), per_row) + 1.5), 0.5 * rows + 1.2))
    for i, (tok, s) in enumerate(zip(tokens, scores)):
        x, y = i % per_row, -(i // per_row)
        ax.add_patch(plt.Rectangle((x, y - 0.4), 0.95, 0.8, color=[c / 255 for c in rgb(s, scale)]))
        ax.text(x + 0.47, y, tok.replace("$", r"\$"), ha="center", va="center", fontsize=8, family="monospace")
    ax.set_xlim(-0.2, min(len(tokens), per_row) + 0.2)
    ax.set_ylim(-rows + 0.4, 0.6)
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    cmap = LinearSegmentedColormap.from_list("ig", [[c / 255 for c in NEGATIVE], (1, 1, 1), [c / 255 for c in POSITIVE]])
    fig.colorbar(plt.cm.ScalarMappable(Normalize(-scale, scale), cmap), ax=ax, fraction=0.03, pad=0.01)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def molecule_png(smiles: str, tokens: list[str], scores: list[float], path: Path) -> Path | None:
    """The 2-D depiction (RDKit) with each atom coloured by its token's score; None without RDKit or
    when the atoms cannot be matched to tokens (a cut string)."""
    try:
        from rdkit.Chem.Draw import rdMolDraw2D

        from cnnkit.data.sequence.chem import atom_token_index, parse
    except ImportError:
        return None
    where = atom_token_index(smiles, tokens)
    if where is None:
        return None
    mol = parse(smiles)
    scale = max([abs(s) for s in scores] + [1e-12])
    colours = {a: tuple(c / 255 for c in rgb(scores[t], scale)) for a, t in enumerate(where)}
    drawer = rdMolDraw2D.MolDraw2DCairo(500, 400)
    drawer.DrawMolecule(mol, highlightAtoms=list(colours), highlightAtomColors=colours, highlightBonds=[])
    drawer.FinishDrawing()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(drawer.GetDrawingText())
    return path


def explain_strings(source: Any, texts: list[str], target: str | None = None, save_dir: str | Path | None = None,
                    steps: int = 50) -> list[dict[str, Any]]:
    """Integrated gradients for each string (literal, or lines of .txt/.smi/.csv files as `predict` reads
    them) of a sequence run / checkpoint: one dict per string with "input", "tokens", "attributions",
    "target", "completeness_gap", and the PNG paths ("png", "molecule_png" for SMILES with RDKit) when
    `save_dir` is given. `target`: a class name (classification; default the predicted class).
    Strings that cannot be read are {"file", "input", "error"}, as in predict."""
    from cnnkit.engine.predictor import load
    from cnnkit.tasks.sequence import check_string, collect_strings

    predictor = load(source, device="cpu")
    seq = predictor.meta["preprocess"]["sequence"]
    classes = predictor.classes
    if target is not None and target not in classes:
        raise CnnkitError(f'Target "{target}" is not a class of this model ({", ".join(classes[:10])}).')
    out = []
    for n, (where, text) in enumerate(collect_strings(texts, seq.get("input_column", "text")), start=1):
        error = check_string(text, where, seq["smiles"])
        if error:
            out.append({"file": where, "input": text, "error": error})
            continue
        ids = predictor.task.model_input([text], predictor.meta["preprocess"])
        with torch.no_grad():
            logits = predictor.model(ids)[0]
        k = classes.index(target) if target is not None else (int(logits.argmax()) if classes else 0)
        # at least 256 steps: strings are short, and with 50 the max-pooled CNN left gaps of ~5 % on "CCO"
        scores, gap, diff = token_attributions(predictor.model, ids, k, max(steps, 256))
        tokens = predictor.task.encoder.tokens(text)
        record: dict[str, Any] = {"file": where, "input": text, "tokens": tokens,
                                  "attributions": [float(s) for s in scores], "target": classes[k] if classes else "value",
                                  "completeness_gap": gap, "output_minus_baseline": diff}
        if save_dir is not None:
            stem = f"{n:04d}_ig"
            record["png"] = str(tokens_png(tokens, record["attributions"], f"{where}: IG for {record['target']}",
                                           Path(save_dir) / f"{stem}_tokens.png"))
            if seq["smiles"] and seq["tokenizer"] == "smiles":
                mol = molecule_png(text, tokens, record["attributions"], Path(save_dir) / f"{stem}_molecule.png")
                if mol is not None:
                    record["molecule_png"] = str(mol)
        out.append(record)
    return out


def explain_strings_cli(source: str, texts: list[str], target: str | None, save_dir: str | None, as_json: bool,
                        steps: int = 50) -> dict[str, Any]:
    """`cnnkit explain RUN STRING...` for a sequence model: PNGs in save_dir (default <run>/explain), the
    coloured strings on the terminal (or one JSON object with `as_json`); returns the summary."""
    from rich.console import Console

    from cnnkit.explain.subject import run_dir_of

    out_dir = Path(save_dir) if save_dir else run_dir_of(source) / "explain"
    records = explain_strings(source, texts, target, out_dir, steps)
    summary = {"source": str(source), "method": "ig", "steps": steps, "save_dir": str(out_dir), "explanations": records}
    if as_json:
        import json

        print(json.dumps(summary))
        return summary
    console = Console()
    for r in records:
        if "error" in r:
            console.print(f"[red]{r['error']}[/]")
            continue
        console.print(f"{r['file']}  IG for {r['target']} (completeness gap {100 * r['completeness_gap']:.2f} %):")
        console.print(rich_text(r["tokens"], r["attributions"]))
    console.print(f"PNGs written to {out_dir}")
    return summary
