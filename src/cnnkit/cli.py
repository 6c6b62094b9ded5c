"""`cnnkit` command line: parses arguments into a `Config` / call and hands off to the API.

No logic lives here (DESIGN): each sub-command maps its flags onto `Config` keys or the
keyword arguments of one API function. `CnnkitError`s end as one line on stderr, exit 2.
"""
from __future__ import annotations

import argparse
import json
import sys

from cnnkit.errors import CnnkitError

EXAMPLES = """examples:
  cnnkit train --data digits --model lenet5          # LeNet-5 on the bundled digits, ~1 min on a laptop CPU
  cnnkit train --data fashion-mnist --model resnet20 --epochs 3
  cnnkit eval runs/digits-lenet5 --json
  cnnkit predict runs/digits-lenet5 my_digits/ --json
  cnnkit explain runs/digits-lenet5 img.png --method gradcam,ig --evaluate
  cnnkit info resnet20 --data fashion-mnist
"""

# flag -> config key, for `train` (everything else goes through --set key=value)
TRAIN_FLAGS = {
    "data": "data.name", "task": "task", "model": "model.name", "epochs": "train.epochs",
    "batch_size": "train.batch_size", "lr": "train.lr", "optimizer": "train.optimizer",
    "schedule": "train.schedule", "augment": "data.augment", "dropout": "model.dropout",
    "weight_decay": "train.weight_decay", "label_smoothing": "train.label_smoothing",
    "patience": "train.patience", "seed": "train.seed", "device": "train.device", "out": "train.out",
    "resume": "train.resume", "root": "data.root", "image_size": "data.image_size",
    "attention": "model.attention", "max_bad": "data.max_bad", "class_weights": "data.class_weights",
    "ema": "train.ema", "deterministic": "train.deterministic", "grad_clip": "train.grad_clip",
    "warmup_epochs": "train.warmup_epochs", "workers": "data.workers", "threads": "train.threads",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cnnkit", formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Build, train, evaluate and explain CNNs for classification, "
                                            "detection and segmentation.", epilog=EXAMPLES)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a model; writes a run directory",
                       description="Train a model. Values not given come from --config, then from the task's "
                                   "defaults for the data (see the resolved run_dir/config.yaml).")
    t.add_argument("--data", help="built-in name (digits, fashion-mnist, digits-detect, digits-seg, fashion-detect, "
                   "fashion-seg) or a path")
    t.add_argument("--task", choices=["classify", "detect", "segment", "instance"], help="default: from the data")
    t.add_argument("--model", help="registered name (see `cnnkit models`) or a layer-list YAML/JSON")
    t.add_argument("--config", help="a YAML recipe (e.g. configs/fashion-mnist-resnet20.yaml)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float, help="peak learning rate")
    t.add_argument("--optimizer", choices=["sgd", "adamw"])
    t.add_argument("--schedule", choices=["onecycle", "cosine", "step", "constant"])
    t.add_argument("--warmup-epochs", type=float)
    t.add_argument("--augment", choices=["none", "light", "strong"])
    t.add_argument("--dropout", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--label-smoothing", type=float)
    t.add_argument("--grad-clip", type=float, help="clip the gradient norm")
    t.add_argument("--ema", action="store_const", const=True, help="evaluate an EMA of the weights")
    t.add_argument("--patience", type=int, help="early stopping; best weights are always kept")
    t.add_argument("--attention", choices=["se", "cbam"], help="attention blocks in models that support them")
    t.add_argument("--image-size", type=int)
    t.add_argument("--root", help="folder holding the files of a built-in set (fashion-mnist)")
    t.add_argument("--max-bad", type=float, help="bad files tolerated: fraction (<1) or count before stopping")
    t.add_argument("--class-weights", choices=["auto"], help="weight the loss by inverse class frequency")
    t.add_argument("--seed", type=int)
    t.add_argument("--deterministic", action="store_const", const=True, help="PyTorch deterministic algorithms")
    t.add_argument("--device", help="auto | cpu | cuda | mps")
    t.add_argument("--threads", type=int, help="CPU threads for torch")
    t.add_argument("--workers", type=int, help="DataLoader workers (streaming datasets)")
    t.add_argument("--out", help="run directory (default runs/<data>-<model>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run exactly from its last.pt")
    t.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="any config key, e.g. train.ema_decay=0.99")
    t.add_argument("--json", action="store_true", help="print only the final metrics as JSON on stdout")

    e = sub.add_parser("eval", help="evaluate a checkpoint (default: its own data, test split)")
    e.add_argument("source", metavar="RUN_DIR|CKPT")
    e.add_argument("--data", help="evaluate on other data with the same classes")
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--device", default="auto")
    e.add_argument("--json", action="store_true")

    pr = sub.add_parser("predict", help="predict files, folders or globs")
    pr.add_argument("source", metavar="RUN_DIR|CKPT")
    pr.add_argument("inputs", nargs="+", metavar="INPUT")
    pr.add_argument("--top-k", type=int, default=5, help="classes listed per image (classification)")
    pr.add_argument("--conf", type=float, default=None, help="score threshold (detection)")
    pr.add_argument("--iou", type=float, default=None, help="NMS IoU threshold (detection)")
    pr.add_argument("--save-dir", help="write drawings (boxes, masks, labels) here")
    pr.add_argument("--device", default="auto")
    pr.add_argument("--json", action="store_true")

    x = sub.add_parser("explain", help="what the network sees: CAMs, gradients, occlusion, feature maps")
    x.add_argument("source", metavar="RUN_DIR|CKPT")
    x.add_argument("images", nargs="*", metavar="IMAGE")
    x.add_argument("--method", default="gradcam",
                   help="comma list of gradcam, gradcam++, saliency, smoothgrad, guided-gradcam, ig, occlusion, "
                        "featuremaps, filters")
    x.add_argument("--target", help="class name/index (classify, segment) or box index / x1,y1,x2,y2 (detect)")
    x.add_argument("--layer", help="module name for CAMs / feature maps (default: the last conv stage)")
    x.add_argument("--save-dir", help="default: RUN_DIR/explain")
    x.add_argument("--evaluate", action="store_true", help="deletion/insertion AUC and the randomisation check")
    x.add_argument("--worst", type=int, help="explain the N most confidently wrong test images")
    x.add_argument("--steps", type=int, default=50, help="integrated-gradients steps")
    x.add_argument("--window", type=int, default=8, help="occlusion window (pixels)")
    x.add_argument("--stride", type=int, default=4, help="occlusion stride (pixels)")
    x.add_argument("--json", action="store_true")

    r = sub.add_parser("report", help="(re)write RUN_DIR/report.html")
    r.add_argument("run_dir")

    m = sub.add_parser("models", help="list registered models")
    m.add_argument("pattern", nargs="?", default="*")
    m.add_argument("--task", choices=["classify", "detect", "segment", "instance"])
    m.add_argument("--json", action="store_true")

    i = sub.add_parser("info", help="per-layer output shape, parameters and FLOPs")
    i.add_argument("model")
    i.add_argument("--data", default="digits", help="sets channels, image size and classes (default digits)")
    i.add_argument("--image-size", type=int)
    i.add_argument("--json", action="store_true")

    d = sub.add_parser("data", help="inspect, convert or make datasets")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION")
    di = dsub.add_parser("inspect", help="health report: bad files, bad boxes/masks, class balance")
    di.add_argument("source", metavar="DATA")
    di.add_argument("--json", action="store_true")
    dc = dsub.add_parser("convert", help="convert a dataset to another format")
    dc.add_argument("source", metavar="SRC")
    dc.add_argument("--to", required=True, help="coco | yolo | voc | masks | voc-seg | folders")
    dc.add_argument("out", metavar="OUT")
    dm = dsub.add_parser("make", help="write a built-in set to disk")
    dm.add_argument("name", help="digits | fashion-mnist | digits-detect | digits-seg | fashion-detect | fashion-seg")
    dm.add_argument("--format", required=True, help="coco | yolo | voc | masks | voc-seg | folders "
                    "(for a *-seg set, voc = the VOC segmentation layout)")
    dm.add_argument("out", metavar="OUT")
    dm.add_argument("--canvas-size", type=int, help="side of the *-detect / *-seg canvases (default 96)")
    dm.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="any data key, e.g. data.split_seed=1")
    return p


def train_config(args: argparse.Namespace):
    from cnnkit.config import Config

    cfg = Config.load(args.config) if args.config else Config()
    for flag, key in TRAIN_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            cfg.set(key, value)
    return cfg.apply_overrides(args.set)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 0
    try:
        return _dispatch(args)
    except CnnkitError as e:
        print(f"cnnkit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cnnkit ... --json | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=float))


def _dispatch(args: argparse.Namespace) -> int:
    from cnnkit.report import console as show

    if args.command == "train":
        from cnnkit.engine.trainer import fit

        run = fit(train_config(args), quiet=args.json)
        if args.json:
            _print_json({"run_dir": str(run.dir), **run.summary["test"], "train_seconds": run.summary["train_seconds"]})
    elif args.command == "eval":
        from cnnkit.engine.evaluate import evaluate_checkpoint

        metrics = evaluate_checkpoint(args.source, data=args.data, split=args.split, device=args.device)
        _print_json(metrics) if args.json else show.metrics_table(metrics)
    elif args.command == "predict":
        from cnnkit.engine.predictor import load

        options = {k: v for k, v in (("top_k", args.top_k), ("conf", args.conf), ("iou", args.iou)) if v is not None}
        records = load(args.source, device=args.device).predict(args.inputs, save_dir=args.save_dir, **options)
        _print_json(records) if args.json else show.predictions(records, args.save_dir)
    elif args.command == "explain":
        from cnnkit.explain.api import explain_cli

        explain_cli(args.source, args.images, [m.strip() for m in args.method.split(",") if m.strip()],
                    args.target, args.layer, args.save_dir, args.evaluate, args.worst, args.json, args.steps,
                    args.window, args.stride)
    elif args.command == "report":
        from cnnkit.report.html import write_report

        print(write_report(args.run_dir))
    elif args.command == "models":
        import cnnkit.tasks  # noqa: F401  (the tasks register their detection/segmentation models)
        from cnnkit.models import MODELS, list_models

        names = list_models(args.pattern, task=args.task)
        rows = [{"name": n, "tasks": list(MODELS.meta(n).get("tasks", ())), "doc": MODELS.meta(n).get("doc", "")}
                for n in names]
        _print_json(rows) if args.json else show.model_list(rows)
    elif args.command == "info":
        show.model_info(args.model, args.data, args.image_size, args.json)
    elif args.command == "data":
        return _data(args)
    return 0


def _data(args: argparse.Namespace) -> int:
    from cnnkit.data import commands
    from cnnkit.report import console as show

    if args.data_command == "inspect":
        report = commands.inspect(args.source)
        _print_json(report.to_dict()) if args.json else show.health(report)
    elif args.data_command == "convert":
        print(commands.convert(args.source, args.to, args.out))
    elif args.data_command == "make":
        from cnnkit.config import Config

        cfg = Config().apply_overrides(args.set)
        if args.canvas_size:
            cfg.data.canvas_size = args.canvas_size
        print(commands.make(args.name, args.format, args.out, cfg))
    else:
        build_parser().parse_args(["data", "--help"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
