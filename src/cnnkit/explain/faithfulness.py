"""Does an explanation say something true about the model? Two checks (`--evaluate`).

1. Deletion and insertion curves (Petsiuk et al. 2018, RISE): switch the model input's
   pixels, most important first, from the input to zero (deletion — the target score should
   fall fast, low AUC is good) or from a blurred input to the input (insertion — it should
   rise fast, high AUC is good), in `steps` equal steps, all perturbed inputs of a curve
   evaluated in chunks. As in RISE's code, "zero" is zero in model-input space: the dataset's
   mean colour for the standardised inputs of classifiers and segmenters, black for detectors
   (they take 0..1 images). On digits this matters: a black image is read as a 7 or a 2, so
   deleting to black cannot lower a 7's score. The same curves for a random pixel order are
   the baseline a method has to beat. The score is the target's bounded form (`target.prob`:
   softmax probability, box score, mean class probability over the region). The random
   baseline of an image is the mean curve of 4 random orders, shared by all methods.
2. Model randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps"): explain the
   same inputs with a copy of the model whose weights are re-initialised — cascading, from
   the output layer down to the input in at most `max_steps` groups, so the last step is the
   fully re-initialised model — and compare each map with the trained model's by Spearman
   rank correlation. The verdict uses the fully re-initialised end point: a method whose map
   barely changes (correlation >= 0.5) is flagged as not explaining the model.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnkit.explain.layers import get_layer, trace
from cnnkit.explain.methods import attribute, chunk_size

RANDOMISATION_THRESHOLD = 0.5


def ranked_order(raw: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pixel indices, most important first; ties (e.g. Grad-CAM's zeros) in random order, not raster order."""
    flat = raw.flatten().float().cpu()
    perm = torch.randperm(flat.numel(), generator=generator)
    return perm[torch.argsort(-flat[perm], stable=True)]


@torch.no_grad()
def perturbation_curve(prob, start: torch.Tensor, end: torch.Tensor, order: torch.Tensor, steps: int,
                       batch: int | None = None) -> torch.Tensor:
    """Scores as pixels go from `start` to `end` in `order` (steps + 1 points, fraction 0..1)."""
    h, w = start.shape[-2:]
    rank = torch.empty(h * w, dtype=torch.long)
    rank[order] = torch.arange(h * w)
    counts = torch.round(torch.linspace(0, 1, steps + 1) * (h * w)).long()
    batch = batch or chunk_size(start, 1 << 22)
    scores = []
    for lo in range(0, steps + 1, batch):
        k = counts[lo:lo + batch]
        mask = (rank[None, :] < k[:, None]).float().reshape(-1, 1, h, w).to(start.device)
        scores.append(prob(start * (1 - mask) + end * mask).float().cpu())
    return torch.cat(scores)


def auc(curve: torch.Tensor) -> float:
    return float(torch.trapezoid(curve, dx=1.0 / (len(curve) - 1)))


def curves_for(score: nn.Module, x: torch.Tensor, raw: torch.Tensor, delete_to: torch.Tensor,
               insert_from: torch.Tensor, steps: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deletion and insertion curves of one map, for one input."""
    order = ranked_order(raw, torch.Generator().manual_seed(seed))
    return {"deletion": perturbation_curve(score.prob, x, delete_to, order, steps),
            "insertion": perturbation_curve(score.prob, insert_from, x, order, steps)}


def random_curves(score: nn.Module, x: torch.Tensor, delete_to: torch.Tensor, insert_from: torch.Tensor,
                  steps: int = 32, seed: int = 0, orders: int = 4) -> dict[str, torch.Tensor]:
    """The same curves for random pixel orders, averaged over `orders` permutations: the
    baseline is the expected curve of a random order, not one draw of it."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    perms = [torch.randperm(x.shape[-2] * x.shape[-1], generator=gen) for _ in range(orders)]
    return {"deletion": torch.stack([perturbation_curve(score.prob, x, delete_to, p, steps) for p in perms]).mean(0),
            "insertion": torch.stack([perturbation_curve(score.prob, insert_from, x, p, steps)
                                      for p in perms]).mean(0)}


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Rank correlation of two maps; a constant map shares no ranking with anything (0)."""
    from scipy.stats import spearmanr

    a, b = a.flatten().double().cpu().numpy(), b.flatten().double().cpu().numpy()
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def parametrised_layers(model: nn.Module, run) -> list[str]:
    """Modules with their own weights and a `reset_parameters`, in execution order."""
    mods = {n: m for n, m in model.named_modules()
            if n and hasattr(m, "reset_parameters") and any(True for _ in m.parameters(recurse=False))}
    seen = trace(model, run, mods)
    return sorted((n for n in mods if n in seen), key=lambda n: seen[n]["first"])


def _reinit(model: nn.Module, names: list[str], seed: int) -> None:
    modules = dict(model.named_modules())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in names:
            modules[name].reset_parameters()
            if hasattr(modules[name], "reset_running_stats"):
                modules[name].reset_running_stats()


def randomisation_check(model: nn.Module, run, records: list[dict[str, Any]], methods: list[str],
                        options: dict[str, Any], mode: str = "cascading", max_steps: int = 5, seed: int = 0
                        ) -> dict[str, dict[str, Any]]:
    """Per method: Spearman correlation of trained vs re-initialised maps (see module docstring)."""
    layers = parametrised_layers(model, run)[::-1]  # output layer first
    if mode == "full" or not layers:
        groups = [layers]
    else:
        groups = [list(g) for g in np.array_split(np.array(layers, dtype=object), min(max_steps, len(layers)))]
    random_model = copy.deepcopy(model).eval()
    steps: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    for group in groups:
        _reinit(random_model, group, seed)
        for method in methods:
            corrs, corrs_abs = [], []
            for rec in records:
                layer_name = rec["layers"].get(method)
                layer = get_layer(random_model, layer_name) if layer_name else None
                raw, _ = attribute(method, rec["score"].rebind(random_model), rec["x"], layer, rec["baseline"],
                                   {**options, **rec.get("placements", {}).get(method, {})})
                corrs.append(spearman(rec["raws"][method], raw))
                corrs_abs.append(spearman(rec["raws"][method].abs(), raw.abs()))
            steps[method].append({"reinitialised": group[-1] if group else None, "layers": len(group),
                                  "spearman": float(np.mean(corrs)), "spearman_abs": float(np.mean(corrs_abs))})
    out = {}
    for method in methods:
        final = steps[method][-1]
        out[method] = {"mode": mode if mode == "full" else "cascading (output layer first)",
                       "spearman": final["spearman"], "spearman_abs": final["spearman_abs"],
                       "explains_model": final["spearman"] < RANDOMISATION_THRESHOLD,
                       "steps": steps[method] if len(groups) > 1 else []}
    return out


def _mean_curve(curves: list[torch.Tensor]) -> list[float]:
    return [round(float(v), 5) for v in torch.stack(curves).mean(0)]


def evaluate(model: nn.Module, run, records: list[dict[str, Any]], methods: list[str],
             options: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Both checks over `records` (one per image/target: x, score, baseline, blurred, raws,
    layers, placements), averaged per method. `run` is a zero-argument forward used to order layers."""
    options = dict(options or {})
    steps = int(options.get("curve_steps", 32))
    random = [random_curves(rec["score"], rec["x"], torch.zeros_like(rec["x"]), rec["blurred"], steps, seed=i,
                            orders=int(options.get("random_orders", 4))) for i, rec in enumerate(records)]
    out: dict[str, dict[str, Any]] = {}
    for method in methods:
        curves: dict[str, list[torch.Tensor]] = {}
        for i, rec in enumerate(records):
            res = curves_for(rec["score"], rec["x"], rec["raws"][method], torch.zeros_like(rec["x"]),
                             rec["blurred"], steps, seed=i)
            for kind in ("deletion", "insertion"):
                curves.setdefault(kind, []).append(res[kind])
                curves.setdefault(f"{kind}_random", []).append(random[i][kind])
        summary: dict[str, Any] = {"images": len(records), "steps": steps}
        for kind in ("deletion", "insertion"):
            mine = np.array([auc(c) for c in curves[kind]])
            rand = np.array([auc(c) for c in curves[f"{kind}_random"]])
            better = mine < rand if kind == "deletion" else mine > rand
            summary[f"{kind}_auc"] = float(mine.mean())
            summary[f"{kind}_auc_random"] = float(rand.mean())
            summary[f"{kind}_better_than_random"] = float(better.mean())
            summary[f"{kind}_curve"] = _mean_curve(curves[kind])
            summary[f"{kind}_curve_random"] = _mean_curve(curves[f"{kind}_random"])
        out[method] = summary
    if options.get("randomisation", "cascading") != "off":
        rnd = randomisation_check(model, run, records, methods, options,
                                  mode=options.get("randomisation", "cascading"),
                                  max_steps=int(options.get("randomisation_steps", 5)))
        for method in methods:
            out[method]["randomisation"] = rnd[method]
    return out
