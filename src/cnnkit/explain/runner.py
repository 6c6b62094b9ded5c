"""`run`: explanations of images by a `Subject` — the loop shared by `explain(...)`, `explain_cli`
and the `--worst` review (image x target x method, then the learned filters).
"""
from __future__ import annotations

from typing import Any

import torch

from cnnkit.explain.explanation import Explanation, display_image, to_image_map
from cnnkit.explain.layers import first_convs
from cnnkit.explain.methods import LAYER_METHODS, attribute
from cnnkit.explain.subject import Subject, blur
from cnnkit.explain.targets import make_target, split_targets

SUBJECT_OPTIONS = ("task", "classes", "preprocess")  # options that build a Subject, not a method


def run(subject: Subject, imgs: list[tuple[str, torch.Tensor]], methods: list[str], target: Any,
        layer: str | None, options: dict[str, Any], keep_records: bool = False
        ) -> tuple[list[Explanation], list[dict[str, Any]]]:
    """Explanations (and, for --evaluate, the inputs the faithfulness checks reuse)."""
    options = {k: v for k, v in options.items() if k not in SUBJECT_OPTIONS}
    explanations: list[Explanation] = []
    records: list[dict[str, Any]] = []
    for name, image in imgs:
        x = subject.to_input(image)
        shown = display_image(image)
        for spec in split_targets(target, subject.output):
            score, info = make_target(subject.output, subject.model, x, spec, subject.classes,
                                      float(options.get("min_iou", 0.5)))
            baseline = subject.baseline(options.get("baseline", "black"), image, x)
            raws: dict[str, torch.Tensor] = {}
            layers: dict[str, str | None] = {}
            placements: dict[str, dict[str, Any]] = {}
            for method in methods:
                if method == "filters":
                    continue
                lname, lmod, placement = None, None, {}
                if method in LAYER_METHODS:
                    lname, lmod = subject.layer(layer, x, "first" if method == "featuremaps" else "cam")
                    placement = subject.placement(lname, x)
                raw, extra = attribute(method, score, x, lmod, baseline, {**options, **placement})
                raws[method], layers[method], placements[method] = raw, lname, placement
                explanations.append(Explanation(method, to_image_map(raw, tuple(image.shape[-2:])), raw, shown,
                                                info, lname, name, extra))
            if keep_records:
                records.append({"name": name, "x": x, "score": score, "target": info, "baseline": baseline,
                                "blurred": blur(x), "raws": raws, "layers": layers, "placements": placements})
    if "filters" in methods:
        from cnnkit.explain.feature_maps import conv_weights

        x0 = subject.to_input(imgs[0][1])
        names = [layer] if layer else first_convs(subject.model, subject.run(x0), n=2)
        for lname in names:
            explanations.append(Explanation("filters", None, None, None, {}, lname, "",
                                            {"weights": conv_weights(subject.model, lname)}))
    return explanations, records
