"""Entry points of `cnnkit explain`: the Python API `explain(...)` and the CLI's `explain_cli(...)`.

`explain` takes a model (or a run directory / checkpoint), images and method names and
returns `Explanation`s; `explain_cli` does the same for files named on the command line,
writes the PNGs (one overlay per image x method x target, a side-by-side grid when several
methods or targets are asked for, feature-map grids, filter tiles), runs the faithfulness
checks with `--evaluate` and the `--worst N` review, and returns one JSON-able summary
(printed as rich tables unless `--json`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.explain.explanation import Explanation
from cnnkit.explain.methods import ATTRIBUTIONS, parse_methods
from cnnkit.explain.runner import SUBJECT_OPTIONS, run
from cnnkit.explain.subject import Subject, as_images, from_model, from_path, run_dir_of

METHOD_OPTIONS = ("steps", "baseline", "window", "stride", "internal_batch_size", "ig_method", "perturbations_per_eval",
                  "nt_samples", "noise", "min_iou")


def load_subject(model_or_path: Any, sample: torch.Tensor | None = None, **options: Any) -> Subject:
    """A Subject from a run directory / checkpoint path, a Subject, or a bare nn.Module."""
    if isinstance(model_or_path, Subject):
        return model_or_path
    if isinstance(model_or_path, nn.Module):
        if sample is None:
            raise CnnkitError("Explaining a bare model needs at least one image.")
        return from_model(model_or_path, sample, **{k: options.get(k) for k in SUBJECT_OPTIONS})
    if isinstance(model_or_path, (str, Path)):
        return from_path(model_or_path)
    raise CnnkitError(f"Cannot explain a {type(model_or_path).__name__}: "
                      "give a model, a run directory or a checkpoint.")


def explain(model_or_path: Any, images: Any, method: str | list[str] = "gradcam", target: Any = None,
            layer: str | None = None, **options: Any) -> list[Explanation]:
    """Explain `images`: what `predict` accepts (`cnnkit.engine.inputs`): file paths, folders, globs,
    PIL images, numpy H x W [x C] arrays (channels last), torch C x H x W tensors or N x C x H x W
    batches (channels first), uint8 or floats in [0, 1]; anything else is a `CnnkitError`.

    method: one name or a comma list of gradcam, gradcam++, saliency, smoothgrad, guided-backprop,
    guided-gradcam, ig, occlusion, featuremaps, filters. target: class name/index, detection box
    index or "x1,y1,x2,y2", segmentation class (';' separates several). layer: module name for the
    layer methods (default: the last conv layer/stage with a spatial output; the first conv layer
    for featuremaps/filters). options: steps (IG, 50), baseline ('black'|'zero'|'blur'|number),
    window/stride (occlusion, 8/4), internal_batch_size, ig_method (Captum's, default
    'gausslegendre'), perturbations_per_eval, nt_samples and noise (SmoothGrad, 25 and 0.15),
    min_iou (detection, 0.5); for a bare model also task, classes and preprocess
    (a function list[C x H x W] -> model input batch; default: uint8 / 255).
    Returns one Explanation per image x target x method (image-major), then the filter tiles.
    A sequence run (text or SMILES) takes strings instead of images and returns, per string, the dict of
    `cnnkit.explain.sequence.explain_strings` (integrated gradients per token; options: steps, save_dir).
    """
    from cnnkit.explain.sequence import explain_strings, is_sequence_checkpoint

    if not isinstance(model_or_path, nn.Module) and is_sequence_checkpoint(model_or_path):
        texts = [images] if isinstance(images, str) else list(images)
        return explain_strings(model_or_path, texts, target, options.get("save_dir"), options.get("steps", 50))
    for key in options:
        if key not in SUBJECT_OPTIONS + METHOD_OPTIONS:
            known = SUBJECT_OPTIONS + METHOD_OPTIONS
            raise CnnkitError(f'Unknown explain option "{key}".{did_you_mean(key, known)} '
                              f"Options: {', '.join(known)}.")
    # A run or checkpoint says its channel count: images are decoded to it, as `explain_cli` does.
    # A bare model learns it from the first image.
    subject = None if isinstance(model_or_path, nn.Module) else load_subject(model_or_path)
    onnx_methods_only(subject, parse_methods(method))
    imgs = as_images(images, subject.channels if subject is not None else None)
    subject = subject or load_subject(model_or_path, imgs[0][1], **options)
    explanations, _ = run(subject, imgs, parse_methods(method), target, layer, options)
    return explanations


def onnx_methods_only(subject: Subject | None, methods: list[str]) -> None:
    """An exported .onnx model has no gradients or layers to hook: only occlusion explains it."""
    if subject is not None and subject.meta.get("runtime") == "onnxruntime":
        other = [m for m in methods if m != "occlusion"]
        if other:
            raise CnnkitError(f"{', '.join(other)} need(s) PyTorch's gradients or layers, which an .onnx file does "
                              "not have: use --method occlusion, or explain the run directory / checkpoint.")


def _stems(names: list[str]) -> dict[str, str]:
    """File-name stem per image, numbered when two images share one."""
    stems = [Path(n).stem or f"image{i}" for i, n in enumerate(names)]
    dup = len(set(stems)) < len(stems)
    return {n: (f"{i:02d}_{s}" if dup else s) for i, (n, s) in enumerate(zip(names, stems))}


def save_all(explanations: list[Explanation], out_dir: Path) -> dict[str, Any]:
    """Overlay PNG per explanation, a grid per image when several methods/targets, tiles."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(e.name for e in explanations if e.method != "filters"))
    stems = _stems(names)
    files: dict[str, Any] = {"grids": {}}
    for name in names:
        mine = [e for e in explanations if e.name == name]
        targets = list(dict.fromkeys(repr(e.target) for e in mine))
        for e in mine:
            t = f"_t{targets.index(repr(e.target))}" if len(targets) > 1 else ""
            suffix = f"_{e.layer}" if e.method == "featuremaps" else ""
            path = out_dir / f"{stems[name]}_{e.method.replace('+', 'p')}{suffix}{t}.png"
            e.extra["png"] = str(e.save(path))
        cams = [e for e in mine if e.method != "featuremaps"]
        if len(cams) > 1:
            from cnnkit.explain.overlay import save_grid

            rows = [[e for e in cams if repr(e.target) == t] for t in targets]
            labels = [rows[i][0].label().split(" · ")[-1] if rows[i] else "" for i in range(len(rows))]
            files["grids"][name] = str(save_grid(rows, out_dir / f"{stems[name]}_grid.png", labels))
    for e in explanations:
        if e.method == "filters":
            e.extra["png"] = str(e.save(out_dir / f"filters_{e.layer}.png"))
    return files


def explain_cli(source: str, images: list[str], methods: list[str] | str, target: str | None, layer: str | None,
                save_dir: str | None, evaluate: bool, worst: int | None, as_json: bool, steps: int = 50,
                window: int = 8, stride: int = 4) -> dict[str, Any]:
    """`cnnkit explain RUN|CKPT IMAGE... --method ...`: PNGs in save_dir (default <run>/explain)
    and a JSON-able summary, which it also prints (one JSON object with `as_json`, rich tables
    otherwise)."""
    from cnnkit.explain.sequence import explain_strings_cli, is_sequence_checkpoint

    if is_sequence_checkpoint(source):  # strings, not images: integrated gradients per token
        return explain_strings_cli(source, list(images), target, save_dir, as_json, steps)
    method_list = parse_methods(methods)
    if not images and not worst:
        raise CnnkitError("Give at least one IMAGE to explain (or --worst N to review the test split).")
    if worst is not None and worst < 1:
        raise CnnkitError(f"--worst expects a positive number of images, got {worst}.")
    for key, value in (("--steps", steps), ("--window", window), ("--stride", stride)):
        if value is None or int(value) < 1:
            raise CnnkitError(f"{key} expects a positive integer, got {value}.")
    subject = from_path(source)
    onnx_methods_only(subject, method_list)
    out_dir = Path(save_dir) if save_dir else run_dir_of(source) / "explain"
    out_dir.mkdir(parents=True, exist_ok=True)
    options = {"steps": int(steps), "window": int(window), "stride": int(stride)}
    summary: dict[str, Any] = {"source": str(source), "task": subject.task, "methods": method_list,
                               "save_dir": str(out_dir), "options": options}
    imgs = as_images(list(images), subject.channels) if images else []
    if worst:
        from cnnkit.explain.worst import review_worst

        summary["worst"], worst_imgs = review_worst(subject, int(worst), out_dir, options)
        if not imgs and (evaluate or method_list != ["gradcam"]):
            imgs = worst_imgs  # the worst grid already shows their Grad-CAM; other methods/--evaluate use them
    explanations, records = run(subject, imgs, method_list, target, layer, options, keep_records=evaluate) \
        if imgs else ([], [])
    summary["files"] = save_all(explanations, out_dir) if explanations else {}
    summary["explanations"] = [e.summary() for e in explanations]
    if evaluate:
        summary["faithfulness"] = _evaluate(subject, records, method_list, options, out_dir)
    if as_json:  # the CLI leaves printing to us: one JSON object on stdout and nothing else
        from cnnkit.json_output import dumps

        print(dumps(summary))  # standard JSON: a non-finite score prints as null
    else:
        from cnnkit.explain.console import print_summary

        print_summary(summary)
    return summary


def _evaluate(subject: Subject, records: list[dict[str, Any]], methods: list[str], options: dict[str, Any],
              out_dir: Path) -> dict[str, Any]:
    from cnnkit.explain.faithfulness import RANDOMISATION_THRESHOLD, evaluate
    from cnnkit.explain.overlay import save_curves

    scored = [m for m in methods if m in ATTRIBUTIONS]
    if not scored or not records:
        return {"note": "no attribution method to evaluate (featuremaps and filters are pictures, not attributions)"}
    run_fn = subject.run(records[0]["x"])
    results = evaluate(subject.model, run_fn, records, scored, options)
    curves = save_curves(results, out_dir / "faithfulness_curves.png")
    return {"methods": results, "curves_png": str(curves), "randomisation_threshold": RANDOMISATION_THRESHOLD,
            "protocol": "model-input pixels; deletion to zero input (dataset mean colour), "
                        "insertion from a blurred input"}
