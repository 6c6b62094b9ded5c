"""`cnnkit` command line: parses arguments into a `Config` / call and hands off to the API.

No logic lives here (DESIGN): each sub-command maps its flags onto `Config` keys or the
keyword arguments of one API function. `CnnkitError`s end as one line on stderr, exit 2.
"""
from __future__ import annotations

import argparse
import functools
import sys

from cnnkit.cli_options import add_config_flags, add_set_option, apply_flags, bounded
from cnnkit.errors import CnnkitError

EXAMPLES = """examples:
  cnnkit train --data digits --model lenet5          # LeNet-5 on the bundled digits, ~1 min on a laptop CPU
  cnnkit train --data fashion-mnist --model resnet20 --epochs 3
  cnnkit train --data digits --model lenet5 --find-lr  # LR range test: loss vs LR (PNG) and a suggested --lr
  cnnkit eval runs/digits-lenet5 --json
  cnnkit predict runs/digits-lenet5 my_digits/ --json
  cnnkit explain runs/digits-lenet5 img.png --method gradcam,ig --evaluate
  cnnkit info resnet20 --data fashion-mnist
"""

# the config keys `data inspect|convert|make` take as flags (any other key through --set)
DATA_COMMAND_KEYS = ("data.root", "data.canvas_size")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cnnkit", formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Build, train, evaluate and explain CNNs for classification, "
                                            "detection and segmentation.", epilog=EXAMPLES)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a model; writes a run directory",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train a model. Values not given come from --config, then from the task's\n"
                                   "defaults for the data (see the resolved run_dir/config.yaml).")
    t.add_argument("--config", help="a YAML recipe (e.g. configs/fashion-mnist-resnet20.yaml); flags override it")
    add_set_option(t, "train.ema_decay=0.99")
    t.add_argument("--json", action="store_true", help="print only the final metrics as JSON on stdout")
    add_config_flags(t)
    _add_find_lr_flags(t)

    e = sub.add_parser("eval", help="evaluate a checkpoint (default: its own data, test split)")
    e.add_argument("source", metavar="RUN_DIR|CKPT")
    e.add_argument("--data", help="evaluate on other data with the same classes")
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--device", default="auto")
    e.add_argument("--json", action="store_true")

    pr = sub.add_parser("predict", help="predict files, folders or globs")
    pr.add_argument("source", metavar="RUN_DIR|CKPT")
    pr.add_argument("inputs", nargs="+", metavar="INPUT")
    pr.add_argument("--top-k", type=bounded(int, "[1, inf)", "--top-k"), default=None,
                    help="classes listed per image, best first (classification; at least 1; default: the "
                         "top class in the table, the top 5 in --json)")
    pr.add_argument("--conf", type=bounded(float, "[0, 1]", "--conf"), default=None,
                    help="score threshold in [0, 1] (detection)")
    pr.add_argument("--iou", type=bounded(float, "[0, 1]", "--iou"), default=None,
                    help="NMS IoU threshold in [0, 1] (detection)")
    pr.add_argument("--save-dir", help="write drawings (boxes, masks, labels) here")
    pr.add_argument("--device", default="auto")
    pr.add_argument("--json", action="store_true")
    for flag, text in (("--size", "H or H,W"), ("--channels", "C"), ("--classes", "N or a,b,c")):
        pr.add_argument(flag, help=f"{text}: for an .onnx file without cnnkit metadata")

    _add_explain_parser(sub)
    _add_export_parser(sub)

    r = sub.add_parser("report", help="(re)write RUN_DIR/report.html")
    r.add_argument("run_dir")

    m = sub.add_parser("models", help="list registered models")
    m.add_argument("pattern", nargs="?", default="*")
    m.add_argument("--task", choices=["classify", "detect", "segment", "instance"])
    m.add_argument("--json", action="store_true")

    i = sub.add_parser("info", help="per-layer output shape, parameters and FLOPs")
    i.add_argument("model")
    i.add_argument("--data", default="digits", help="sets channels, image size and classes (default digits)")
    i.add_argument("--image-size", type=bounded(int, "[1, 8192]", "--image-size"), help="at most 8192")
    i.add_argument("--json", action="store_true")

    add_bench_parser(sub)
    from cnnkit.serve.command import add_serve_parser

    add_serve_parser(sub)
    _add_data_parser(sub)
    return p


FIND_LR_TEXT = """\
--find-lr trains nothing: it resolves the run as training would (data, task defaults, model,
optimiser, batch size; each step with the run's augmentation, label smoothing, channels_last and
AMP), raises the LR exponentially over N steps of the training data, records the smoothed loss,
stops once it passes 4x its minimum, and suggests the LR where it fell fastest
(steepest descent of the smoothed loss). Writes lr_find.png/.json/.csv into --out (default
runs/<data>-<model>-lr-find); the weights are not kept; --json prints the suggestion. Look at the
PNG before you train with --lr set to it: a loss that falls most just before it diverges puts the
steepest point near the cliff (the README shows such a case).
  cnnkit train --data digits --model lenet5 --find-lr --threads 1"""


def _add_find_lr_flags(parser) -> None:
    g = parser.add_argument_group("learning-rate range test (Smith 2015, as fastai's lr_find)", FIND_LR_TEXT)
    g.add_argument("--find-lr", action="store_true",
                   help="run the LR range test instead of training; prints the suggested --lr")
    g.add_argument("--find-lr-start", type=float, default=1e-6, metavar="LR",
                   help="first LR tried (default: 1e-6)")
    g.add_argument("--find-lr-end", type=float, default=10.0, metavar="LR",
                   help="last LR tried, unless the loss diverges first (default: 10)")
    g.add_argument("--find-lr-steps", type=int, default=100, metavar="N",
                   help="optimiser steps from start to end, 2 to 100000; the training data is cycled when shorter "
                        "(default: 100)")


def _add_explain_parser(sub) -> None:
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
    x.add_argument("--worst", type=bounded(int, "[1, 10000]", "--worst"),
                   help="explain the N most confidently wrong test images (at most 10000)")
    x.add_argument("--steps", type=bounded(int, "[1, 10000]", "--steps"), default=50,
                   help="integrated-gradients steps (at most 10000)")
    x.add_argument("--window", type=bounded(int, "[1, 8192]", "--window"), default=8, help="occlusion window (pixels)")
    x.add_argument("--stride", type=bounded(int, "[1, 8192]", "--stride"), default=4, help="occlusion stride (pixels)")
    x.add_argument("--json", action="store_true")


def _add_export_parser(sub) -> None:
    x = sub.add_parser("export", help="write the model as ONNX (optionally int8) or safetensors")
    x.add_argument("source", metavar="RUN_DIR|CKPT")
    x.add_argument("--format", default="onnx", help="onnx (default) or safetensors")
    x.add_argument("--out", help="file to write (default: RUN_DIR/model.onnx or .safetensors)")
    x.add_argument("--opset", type=int, help="ONNX opset (default 17)")
    x.add_argument("--dynamic-batch", action="store_true", help="free batch axis (default: batch 1)")
    x.add_argument("--check", action="store_true", help="fail unless onnxruntime matches PyTorch on held-out images")
    x.add_argument("--int8", action="store_true", help="also write <name>.int8.onnx (static, calibrated on train)")
    x.add_argument("--force", action="store_true", help="keep the int8 file even if the metric drops > 1 point")
    x.add_argument("--json", action="store_true")


def _add_data_parser(sub) -> None:
    d = sub.add_parser("data", help="inspect, convert or make datasets")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION")
    di = dsub.add_parser("inspect", help="health report: bad files, bad boxes/masks, class balance")
    di.add_argument("source", metavar="DATA")
    di.add_argument("--json", action="store_true")
    di.add_argument("--strict", action="store_true", help="exit 1 when the report lists any problem")
    dc = dsub.add_parser("convert", help="convert a dataset to another format")
    dc.add_argument("source", metavar="SRC")
    dc.add_argument("--to", required=True, help="coco | yolo | voc | masks | voc-seg | folders")
    dc.add_argument("out", metavar="OUT")
    dm = dsub.add_parser("make", help="write a built-in set to disk")
    dm.add_argument("name", help="digits | fashion-mnist | digits-detect | digits-seg | fashion-detect | fashion-seg")
    dm.add_argument("--format", required=True, help="coco | yolo | voc | masks | voc-seg | folders "
                    "(for a *-seg set, voc = the VOC segmentation layout)")
    dm.add_argument("out", metavar="OUT")
    for action in (di, dc, dm):  # the data keys that reading a set takes, e.g. the max_bad its errors advise
        add_config_flags(action, DATA_COMMAND_KEYS)
        add_set_option(action, "data.max_bad=4")


# the config keys `bench` takes as flags (any other key through --set)
BENCH_KEYS = ("task", "data.root", "data.image_size", "data.canvas_size", "train.batch_size", "train.threads",
              "data.workers")

BENCH_TEXT = """\
What a model costs to train and to run here: training images/s, latency at batch 1 (p50/p99),
throughput at batch 64, peak memory, parameters, FLOPs, achieved FLOP/s and MFU (achieved /
this machine's float32 matmul rate, measured with torch.mm at the same thread count), for the
eager, channels_last and torch.compile backends side by side.

RUN_DIR|CKPT: its own data and weights; MODEL: a registered name or layer-list file on --data
(random weights, like `cnnkit info`). The timing loops share --budget-s seconds; compiling is
time-boxed by --compile-timeout-s, and a backend that fails or runs out of time shows n/a with
its reason (JSON: null, and the reason under "unavailable") instead of stopping the bench.

examples:
  cnnkit bench lenet5 --data digits --budget-s 10 --threads 1
  cnnkit bench resnet20 --data fashion-mnist --profile       # where a training step's time goes
  cnnkit bench runs/digits-detect-tinydet --json --backends eager,channels_last
"""


def add_bench_parser(sub) -> None:
    b = sub.add_parser("bench", help="speed and cost: images/s, latency, memory, FLOPs, MFU per backend",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=BENCH_TEXT)
    b.add_argument("source", metavar="RUN_DIR|CKPT|MODEL")
    b.add_argument("--data", help="data to train and time on (default: a checkpoint's own; digits for a MODEL)")
    b.add_argument("--budget-s", type=bounded(float, "(0, 86400]", "--budget-s"), default=20.0, metavar="S",
                   help="seconds all timing loops share; model build, warm-up and compiling come on top (default: 20)")
    b.add_argument("--backends", default="eager,channels_last,compile",
                   help="comma list of eager, channels_last, compile (default: all three), onnxruntime, "
                        "onnxruntime_int8 (inference only)")
    b.add_argument("--compile-timeout-s", type=bounded(float, "(0, 86400]", "--compile-timeout-s"), default=120.0,
                   metavar="S",
                   help="time box for torch.compile's compiling and warm-up (default: 120)")
    b.add_argument("--profile", action="store_true",
                   help="also profile a few training steps: data / forward / backward / optimiser, top operators")
    b.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    b.add_argument("--json", action="store_true", help="print only the measurements as one JSON object")
    add_config_flags(b, BENCH_KEYS)
    add_set_option(b, "train.amp=true")


def train_config(args: argparse.Namespace):
    """`--config` recipe, then the flags, then `--set` (each later one wins)."""
    from cnnkit.config import Config

    return apply_flags(Config.load(args.config) if args.config else Config(), args)


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
    except OSError as e:  # the file system refused: permissions, a full disk, a file where a folder should be
        where = f" {e.filename}" if e.filename else ""
        print(f"cnnkit: error: cannot use{where} ({e.strerror or type(e).__name__}); check the path, its "
              "permissions and the free space.", file=sys.stderr)
        return 2


def _print_json(obj) -> None:
    from cnnkit.json_output import dumps

    print(dumps(obj, indent=2))  # standard JSON: NaN / inf print as null


def _dispatch(args: argparse.Namespace) -> int:
    from cnnkit.report import console as show

    if args.command == "train" and args.find_lr:
        from cnnkit.engine.lr_find import find_lr

        result = find_lr(train_config(args), args.find_lr_start, args.find_lr_end, args.find_lr_steps,
                         quiet=args.json)
        if args.json:
            _print_json({"dir": str(result.dir), "suggested_lr": result.suggested_lr, "rule": result.rule,
                         "min_loss_lr": result.min_loss_lr, "stopped": result.stopped, "steps": len(result.lrs)})
    elif args.command == "train":
        from cnnkit.engine.resume import given_keys
        from cnnkit.engine.trainer import fit

        cfg = train_config(args)  # the keys the user set: --resume refuses those that differ from the run
        given = [k for k, v in vars(args).items() if k in cfg.keys() and v is not None]
        given += [item.split("=", 1)[0] for item in args.set]
        run = fit(cfg, quiet=args.json, given=given_keys(cfg, given, recipe=args.config))
        if args.json:
            _print_json({"run_dir": str(run.dir), **run.summary["test"], "train_seconds": run.summary["train_seconds"]})
    elif args.command == "eval":
        from cnnkit.engine.evaluate import evaluate_checkpoint

        metrics = evaluate_checkpoint(args.source, data=args.data, split=args.split, device=args.device)
        _print_json(metrics) if args.json else show.metrics_table(metrics)
    elif args.command == "predict":
        from cnnkit.engine.predictor import load

        options = {k: v for k, v in (("top_k", args.top_k), ("conf", args.conf), ("iou", args.iou)) if v is not None}
        plain = {k: v for k, v in (("size", args.size), ("channels", args.channels), ("classes", args.classes)) if v}
        predictor = load(args.source, device=args.device, **plain)
        records = predictor.predict(args.inputs, save_dir=args.save_dir, **options)
        failed = [r for r in records if "error" in r]
        if records and len(failed) == len(records):  # nothing was predicted: the exit code must say so
            wanted = ("non-empty strings or .txt/.smi/.csv files of them" if predictor.task.target == "sequence"
                      else "image files cnnkit can decode")
            raise CnnkitError(f"None of the {len(records)} input(s) could be read (first: {failed[0]['file']}: "
                              f"{failed[0]['error']}); give {wanted}.")
        describe = predictor.task.describe
        if args.top_k is not None:  # asked for: the table lists that many classes (the JSON always holds them)
            describe = functools.partial(describe, top_k=args.top_k)
        _print_json(records) if args.json else show.predictions(records, args.save_dir, describe)
    elif args.command == "explain":
        from cnnkit.explain.api import explain_cli

        explain_cli(args.source, args.images, [m.strip() for m in args.method.split(",") if m.strip()],
                    args.target, args.layer, args.save_dir, args.evaluate, args.worst, args.json, args.steps,
                    args.window, args.stride)
    elif args.command == "export":
        from cnnkit.export.api import export, export_text

        result = export(args.source, args.format, args.out, args.opset, args.dynamic_batch, args.check, args.int8,
                        args.force)
        _print_json(result) if args.json else print(export_text(result))
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
        from cnnkit.config import Config
        from cnnkit.engine.run import resolve_run
        from cnnkit.models import layer_table

        cfg = Config()
        cfg.data.name, cfg.model.name, cfg.data.image_size = args.data, args.model, args.image_size
        run = resolve_run(cfg, device="cpu")
        size = run.cfg.data.image_size
        shape = (1, run.info.image_size) if run.task.target == "sequence" else (1, run.info.channels, size, size)
        show.model_info(layer_table(run.model, shape), run.info.channels, size or run.info.image_size,
                        run.info.num_classes, args.data, args.json)
    elif args.command == "data":
        return _data(args)
    elif args.command == "serve":
        from cnnkit.serve.command import serve_command

        return serve_command(args)
    elif args.command == "bench":
        from cnnkit.bench.api import bench
        from cnnkit.bench.show import bench_table

        given = [f"{k}={v}" for k, v in vars(args).items() if k in BENCH_KEYS and v is not None]
        result = bench(args.source, data=args.data, budget_s=args.budget_s, profile=args.profile,
                       backends=args.backends, compile_timeout_s=args.compile_timeout_s, device=args.device,
                       settings=given + args.set)
        _print_json(result) if args.json else bench_table(result)
    return 0


def _data(args: argparse.Namespace) -> int:
    from cnnkit.data import commands
    from cnnkit.report import console as show

    if args.data_command is None:
        build_parser().parse_args(["data", "--help"])
    from cnnkit.config import Config

    cfg = apply_flags(Config(), args)
    if args.data_command == "inspect":
        report = commands.inspect(args.source, cfg)
        _print_json(report.to_dict()) if args.json else show.health(report)
        if args.strict and report.issues:
            print(f"cnnkit: data inspect --strict: {len(report.issues)} problem(s) in {args.source}", file=sys.stderr)
            return 1
    elif args.data_command == "convert":
        print(commands.convert(args.source, args.to, args.out, cfg))
    elif args.data_command == "make":
        print(commands.make(args.name, args.format, args.out, cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
