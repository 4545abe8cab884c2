"""The ``faceattrs`` command line.

    faceattrs data inspect DIR              counts, labels, quirks, duplicates
    faceattrs data split DIR [--out FILE]   (re)make the project split file
    faceattrs train --recipe NAME ...       train a recipe through the engine
    faceattrs evaluate RUN ...              metrics JSON, Markdown report, plots
    faceattrs export RUN --out DIR          calibrate, export to ONNX, score once on test
    faceattrs quantize --model-dir DIR ...  an int8 copy of an exported model, recalibrated on validation
    faceattrs finetune-descriptors ...      fine-tune the face-descriptor network on the train labels
    faceattrs add-descriptor-heads ...      blend face-descriptor heads into an exported model

Expected failures (a missing folder, a bad argument) print one line on
stderr and exit with 2; there is no stack trace for a user to read.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path

DEFAULT_DATA = Path("../shared/datasets/utkface/UTKFace")
QUANTIZE_METHODS = ("minmax", "percentile")  # faceattrs.build.quantize.METHODS (a test keeps them equal)


class UserError(Exception):
    """An error the user can fix; shown as one line."""


def _cmd_inspect(args: argparse.Namespace) -> int:
    from faceattrs.data.inspect import summarize
    from faceattrs.data.utkface import scan_utkface

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the summary lists the quirks itself
        scan = scan_utkface(args.folder, decode=not args.no_decode)
    print(summarize(scan, show_groups=args.groups))
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    from collections import Counter

    from faceattrs.data.split import make_split, write_split
    from faceattrs.data.utkface import scan_utkface

    scan = scan_utkface(args.folder)
    assignment = make_split(scan.records, seed=args.seed)
    write_split(args.out, scan.records, assignment)
    counts = Counter(assignment.values())
    print(f"wrote {args.out}: " + ", ".join(f"{p} {counts[p]}" for p in ("train", "val", "test")))
    return 0


def _load_parts(recipe, protocol: str, data: Path, seed: int, split: Path):
    from faceattrs.data.cache import load_faces
    from faceattrs.training.protocols import make_parts

    faces = load_faces(data, recipe.input_size)
    return make_parts(faces, protocol, recipe.task, seed, split)


def _parse_settings(pairs: list[str]) -> dict[str, object]:
    """``["epochs=3", "age_loss=ce", "augment=false"]`` -> typed overrides."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise UserError(f"--set expects KEY=VALUE, got {pair!r}")
        value: object = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        elif raw.lower() == "none":
            value = None
        else:
            for kind in (int, float):
                try:
                    value = kind(raw)
                    break
                except ValueError:
                    pass
        out[key] = value
    return out


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from faceattrs.training.early_stopping import PercentileStop
    from faceattrs.training.engine import patience_rule, train
    from faceattrs.training.recipes import build_recipe

    recipe = build_recipe(args.recipe, **_parse_settings(args.set))
    torch.set_num_threads(args.threads)
    rules = None
    if args.patience is not None or args.percentile_stop is not None:
        rules = []
        if args.patience is not None:
            rules.append(patience_rule(recipe, args.patience))
        if args.percentile_stop is not None:
            rules.append(PercentileStop(threshold=args.percentile_stop))
    if args.no_early_stop:
        rules = []
    parts = _load_parts(recipe, args.protocol, args.data, args.seed, args.split)
    result = train(
        recipe,
        parts["train"],
        parts["val"],
        args.out,
        seed=args.seed,
        epochs=args.epochs,
        stopping_rules=rules,
        resume=args.resume,
        extra_config={"protocol": args.protocol, "split": str(args.split)},
    )
    print(
        f"trained {recipe.name}: {result.epochs_run} epochs in {result.seconds / 60:.1f} min, "
        f"stopped by {result.stopped_by or 'epoch limit'}; weights in {args.out}/model.safetensors"
    )
    return 0


def _cmd_teach(args: argparse.Namespace) -> int:
    import torch

    from faceattrs.data.cache import load_faces
    from faceattrs.training.distill import save_soft_targets, teacher_soft_targets
    from faceattrs.training.protocols import make_parts

    torch.set_num_threads(args.threads)
    for run in args.runs:
        if not (run / "config.json").is_file() or not (run / "model.safetensors").is_file():
            raise UserError(f"{run} is not a finished run folder (config.json and model.safetensors)")

    def train_faces(size: int):
        return make_parts(load_faces(args.data, size), args.protocol, "multitask", args.seed, args.split)["train"]

    names, targets = teacher_soft_targets(args.runs, train_faces)
    save_soft_targets(args.out, targets, names, teachers=args.runs)
    print(f"wrote {args.out}: soft targets of {len(args.runs)} teachers for {len(names)} training faces")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from faceattrs.evaluation.metrics import evaluate_predictions
    from faceattrs.evaluation.report import write_report
    from faceattrs.training.checkpoint import load_weights
    from faceattrs.training.engine import predict
    from faceattrs.training.recipes import build_recipe, run_settings

    config_file = args.run / "config.json"
    if not config_file.exists():
        raise UserError(f"{args.run} is not a training run (no config.json)")
    config = json.loads(config_file.read_text())
    recipe = build_recipe(config["recipe"], **run_settings(config))
    protocol = args.protocol or config.get("protocol", "project")
    model = load_weights(recipe.build_model(), args.run / "model.safetensors")
    parts = _load_parts(recipe, protocol, args.data, config["seed"], args.split)
    faces = parts[args.part]
    preds = predict(model, recipe, faces)
    metrics = evaluate_predictions(preds, faces.age, faces.gender, faces.race)
    metrics["model"] = {"run": str(args.run), "recipe": recipe.name, "protocol": protocol, "part": args.part}
    history_file = args.run / "history.json"
    history = json.loads(history_file.read_text()) if history_file.exists() else None
    out = args.out or args.run / f"eval_{protocol}_{args.part}"
    title = f"{recipe.name} on the {protocol} protocol, {args.part} part"
    write_report(metrics, preds, faces.age, out, title, history)
    print(f"wrote {out}/report.md, metrics.json and plots")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from faceattrs.build.export import score_shipped, ship
    from faceattrs.training.checkpoint import load_weights
    from faceattrs.training.recipes import build_recipe, run_settings

    config = json.loads((args.run / "config.json").read_text())
    if args.version:
        config["version"] = args.version
    if config["recipe"] != "multitask":
        raise UserError("only multitask runs are shipped")
    if args.score_only and args.validation_only:
        raise UserError("--score-only re-scores a shipped model on test; --validation-only is for a new candidate")
    settings = {**run_settings(config), "pretrained": False}
    recipe = build_recipe("multitask", **settings)
    parts = _load_parts(recipe, "project", args.data, config["seed"], args.split)
    history = json.loads((args.run / "history.json").read_text())
    if args.score_only:
        # keeps the ONNX-vs-PyTorch check measured at export, which the run folder recorded
        exported = args.run / "ship_report.json"
        earlier = json.loads(exported.read_text()) if exported.exists() else {}
        agreement = {k: v for k, v in earlier.items() if k.startswith("onnx_torch")}
        report = score_shipped(args.out, parts, history, extra=agreement)
        what = f"re-scored {args.out}/model.onnx (sha256 {report['sha256'][:12]}), unchanged"
    else:
        model = load_weights(recipe.build_model(), args.run / "model.safetensors").eval()
        report = ship(
            model,
            recipe,
            parts,
            config,
            args.out,
            split_file=args.split,
            coverage=args.coverage,
            history=history,
            score_test=not args.validation_only,
        )
        (args.run / "ship_report.json").write_text(json.dumps(report, indent=1))
        what = (
            f"shipped {args.out}/model.onnx (sha256 {report['sha256'][:12]}); ONNX vs torch max diff "
            f"{report['onnx_torch_max_abs_diff_age_logits']:.2e}"
        )
        if args.validation_only:
            print(what)
            return _score_validation_only(args.out, parts["val"])
    print(f"{what}\n{_summary(report['test'])}; card and report in {args.out}")
    return 0


def _cmd_quantize(args: argparse.Namespace) -> int:
    from faceattrs.build.quantize import quantize_model_dir
    from faceattrs.data.cache import load_faces
    from faceattrs.inference.attribute_model import AttributeModel
    from faceattrs.training.protocols import project_protocol

    if args.out.resolve() == args.model_dir.resolve():
        raise UserError("--out must differ from --model-dir: the base model is read while the new one is written")
    if args.calibration_faces is not None and args.calibration_faces < 1:
        raise UserError("--calibration-faces must be at least 1")
    parts = project_protocol(load_faces(args.data, AttributeModel(args.model_dir).input_size), args.split)
    options = {"method": args.method, "n_faces": args.calibration_faces}
    quantize_model_dir(
        args.model_dir, args.out, parts, version=args.version, **{k: v for k, v in options.items() if v is not None}
    )
    return _score_validation_only(args.out, parts["val"])


def _cmd_self_distill(args: argparse.Namespace) -> int:
    from faceattrs.build.self_distill import SelfDistillConfig, self_distill_model_dir
    from faceattrs.data.cache import load_faces
    from faceattrs.inference.attribute_model import AttributeModel
    from faceattrs.training.protocols import project_protocol

    if args.out.resolve() == args.model_dir.resolve():
        raise UserError("--out must differ from --model-dir: the base model is read while the new one is written")
    if not 0 <= args.degrade <= 1:
        raise UserError("--degrade is a share of the training faces, between 0 and 1")
    if args.epochs < 1:
        raise UserError("--epochs must be at least 1")
    if args.gender_label_weight < 0 or args.child_gender_weight < 0:
        raise UserError("--gender-label-weight and --child-gender-weight must not be negative")
    base = AttributeModel(args.model_dir)
    if not base.metadata["input"].get("flip_tta_in_graph"):
        raise UserError(f"{args.model_dir} does not average over a mirror image: give an exported multitask model")
    parts = project_protocol(load_faces(args.data, base.input_size), args.split)
    config = SelfDistillConfig(
        epochs=args.epochs,
        lr=args.lr,
        degrade=args.degrade,
        gender_label_weight=args.gender_label_weight,
        child_gender_weight=args.child_gender_weight,
    )
    self_distill_model_dir(args.model_dir, args.out, parts, args.version, config, single_pass=args.single_pass)
    return _score_validation_only(args.out, parts["val"])


def _score_validation_only(model_dir: Path, val, note: str = "") -> int:
    """Score a candidate on validation (``validation.json``), leaving the test part alone."""
    from faceattrs.build.export import score_part
    from faceattrs.inference.attribute_model import AttributeModel

    model = AttributeModel(model_dir)
    metrics, _ = score_part(model, val, model.metadata["calibration"])
    (model_dir / "validation.json").write_text(json.dumps(metrics, indent=1))
    size = (model_dir / "model.onnx").stat().st_size
    print(
        f"wrote {model_dir}/model.onnx ({size:,} bytes){'; ' + note if note else ''}\n"
        f"{_summary(metrics, 'validation', digits=4)}; test not scored"
    )
    return 0


def _cmd_finetune_descriptors(args: argparse.Namespace) -> int:
    from faceattrs.build.descriptor_finetune import DescriptorFinetuneConfig, finetune, save_finetuned
    from faceattrs.data.cache import load_faces
    from faceattrs.training.protocols import project_protocol

    if not args.net.is_file():
        raise UserError(f"no network dump at {args.net} (tools/dlib_face_net/README.md says how to make it)")
    if args.epochs < 1:
        raise UserError("--epochs must be at least 1")
    if args.size < 16:
        raise UserError("--size is the first network's input size in pixels (128 for the shipped model)")
    if args.child_gender_weight <= 0:
        raise UserError("--child-gender-weight must be positive (1 weighs every face the same)")
    config = DescriptorFinetuneConfig(epochs=args.epochs, lr=args.lr, child_gender_weight=args.child_gender_weight)
    train = project_protocol(load_faces(args.data, args.size), args.split)["train"]
    model = finetune(args.net, train, config)
    sha = save_finetuned(model, args.out, config, args.net, args.size)
    print(f"wrote {args.out} (sha256 {sha[:12]}; {len(train)} train faces, {config.epochs} epochs)")
    return 0


def _cmd_add_descriptor_heads(args: argparse.Namespace) -> int:
    from faceattrs.build.descriptor_finetune import FinetunedMismatch
    from faceattrs.build.descriptor_heads import add_descriptor_heads
    from faceattrs.build.export import score_shipped
    from faceattrs.data.cache import load_faces
    from faceattrs.inference.attribute_model import AttributeModel
    from faceattrs.training.protocols import project_protocol

    if not args.net.is_file():
        raise UserError(f"no network dump at {args.net} (tools/dlib_face_net/README.md says how to make it)")
    if args.out.resolve() == args.model_dir.resolve():
        raise UserError("--out must differ from --model-dir: the base model is read while the new one is written")
    if args.descriptor_calibration != "minmax" and not args.int8_descriptors:
        raise UserError("--descriptor-calibration sets int8 activation ranges: add --int8-descriptors")
    if args.finetuned is not None and not args.finetuned.is_file():
        raise UserError(f"no fine-tuned weights at {args.finetuned} (faceattrs finetune-descriptors writes them)")
    base = AttributeModel(args.model_dir)
    parts = project_protocol(load_faces(args.data, base.input_size), args.split)
    try:
        blend = add_descriptor_heads(
            args.model_dir,
            args.net,
            args.out,
            parts,
            version=args.version,
            int8=args.int8_descriptors,
            calibration_method=args.descriptor_calibration,
            finetuned=args.finetuned,
        )
    except FinetunedMismatch as e:
        raise UserError(str(e)) from None
    if args.validation_only:  # for choosing between candidates before the test part is looked at
        return _score_validation_only(args.out, parts["val"], f"head weights {blend.weights}")
    report = score_shipped(args.out, parts)
    print(
        f"wrote {args.out}/model.onnx (sha256 {report['sha256'][:12]}); head weights on validation "
        f"{blend.weights}\n{_summary(report['test'])}; card and report in {args.out}"
    )
    return 0


def _summary(metrics: dict, part: str = "test", digits: int = 2) -> str:
    """One line of a part's headline figures (age MAE to ``digits`` places, the rates to one more)."""
    m, rate = metrics, digits + 1
    return (
        f"{part}: age MAE {m['age']['mae']:.{digits}f}, CS@5 {m['age']['cs5']:.{rate}f}, ethnicity "
        f"{m['ethnicity']['accuracy']:.4f} (macro-F1 {m['ethnicity']['macro_f1']:.3f}), gender "
        f"{m['gender']['accuracy']:.4f}, 90% range coverage "
        f"{m['calibration']['age_interval']['all']['all']['coverage']:.{rate}f}"
    )


#: Suffixes that mark a file in a folder as a photo even when it cannot be read, so that a damaged
#: or empty photo gets an error row instead of vanishing from the results.
IMAGE_SUFFIXES = frozenset(
    (".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif")
)


def _iter_inputs(paths: list[Path]) -> tuple[list[Path], int]:
    """Files as given; folders walked recursively. Returns the inputs and how many folder files were skipped.

    A folder file is kept when its content is an image or its name ends in an image suffix
    (:data:`IMAGE_SUFFIXES`); anything else there (notes, ``.DS_Store``) is skipped and counted.
    """
    from PIL import Image

    def is_image(path: Path) -> bool:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return True
        try:
            with Image.open(path):
                return True
        except Exception:  # anything unreadable is simply not an image here
            return False

    out: list[Path] = []
    skipped = 0
    for path in paths:
        if path.is_dir():
            files = [f for f in sorted(path.rglob("*")) if f.is_file()]
            images = [f for f in files if is_image(f)]
            out.extend(images)
            skipped += len(files) - len(images)
        else:
            out.append(path)  # a bad file named explicitly gets an error row
    return out, skipped


def _cmd_predict(args: argparse.Namespace) -> int:
    import csv

    from tqdm import tqdm

    from faceattrs.inference.analyzer import Analyzer
    from faceattrs.inference.annotate import annotate
    from faceattrs.inference.records import COLUMNS, rows_for

    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    inputs, skipped = _iter_inputs(args.paths)
    analyzer = Analyzer(threads=args.threads)
    out = args.output.open("w", newline="") if args.output else sys.stdout
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n") if args.format == "csv" else None
    if writer:
        writer.writeheader()
    if args.annotate:
        args.annotate.mkdir(parents=True, exist_ok=True)
    counts = {"ok": 0, "no_face": 0, "error": 0}
    faces = 0
    results = analyzer.analyze_many(
        [str(p) for p in inputs],
        aligned=args.aligned,
        batch_size=args.batch_size,
        keep_images=bool(args.annotate),
    )
    try:
        for i, result in enumerate(tqdm(results, total=len(inputs), desc="predict", unit="img", file=sys.stderr)):
            counts[result.status] += 1
            faces += len(result.faces)
            for row in rows_for(result):
                if writer:
                    writer.writerow(row)
                else:
                    out.write(json.dumps(row) + "\n")
            if args.annotate and result.image is not None:
                name = f"{i:05d}_{Path(result.source).stem}.jpg"
                annotate(result.image, result.faces).save(args.annotate / name, quality=90)
                result.image = None
    finally:
        if args.output:
            out.close()
    others = f"; {skipped} other file{'s' if skipped > 1 else ''} in the folders skipped (not images)"
    print(
        f"{len(inputs)} files: {counts['ok']} with faces ({faces} faces), "
        f"{counts['no_face']} without a face, {counts['error']} unreadable" + (others if skipped else ""),
        file=sys.stderr,
    )
    return 1 if counts["error"] else 0


def _cmd_app(args: argparse.Namespace) -> int:
    from faceattrs.app.messages import MAX_UPLOAD_MB

    main_py = Path(__file__).parent / "app" / "main.py"
    command = [
        sys.executable, "-m", "streamlit", "run", str(main_py),
        "--server.address", args.host,
        "--server.port", str(args.port),
        "--server.headless", "true",
        "--server.maxUploadSize", str(MAX_UPLOAD_MB),
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip
    print(f"faceattrs app on http://{args.host}:{args.port} (Ctrl+C stops it)", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)  # become the server, so stopping this process stops the app


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from faceattrs.api.server import ApiSettings, create_app

    settings = ApiSettings.from_env(workers=args.workers)
    app = create_app(settings)
    print(f"faceattrs API on http://{args.host}:{args.port} (docs at /docs)", file=sys.stderr)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="info",
        access_log=not args.no_access_log,
        loop=args.loop,
        http=args.http,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceattrs", description="Age, gender and ethnicity from faces.")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect and split UTKFace").add_subparsers(dest="data_command", required=True)
    inspect = data.add_parser("inspect", help="counts, label distributions, quirks, duplicate groups")
    inspect.add_argument("folder", type=Path)
    inspect.add_argument("--groups", type=int, default=5, help="duplicate groups to list")
    inspect.add_argument("--no-decode", action="store_true", help="skip the decode check (faster)")
    inspect.set_defaults(func=_cmd_inspect)
    split = data.add_parser("split", help="write the project split file")
    split.add_argument("folder", type=Path)
    split.add_argument("--out", type=Path, default=Path("splits/utkface_v1.csv"))
    split.add_argument("--seed", type=int, default=0)
    split.set_defaults(func=_cmd_split)

    from faceattrs.training.protocols import PROTOCOLS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", type=Path, default=DEFAULT_DATA, help="UTKFace folder")
    common.add_argument("--split", type=Path, default=Path("splits/utkface_v1.csv"))
    common.add_argument("--protocol", choices=PROTOCOLS)

    train = sub.add_parser("train", parents=[common], help="train a recipe")
    train.add_argument(
        "--recipe",
        default="multitask",
        choices=["multitask", "seed-ethnicity", "seed-age"],
        help="default: multitask, the shipped model's recipe",
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a multitask setting, e.g. --set epochs=3 --set age_loss=ce",
    )
    train.add_argument("--out", type=Path, required=True, help="run folder")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    train.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    train.add_argument("--patience", type=int, help="stop after N epochs without improvement; keep the best")
    train.add_argument("--percentile-stop", type=float, metavar="T", help="the original percentile rule")
    train.add_argument("--no-early-stop", action="store_true", help="run every epoch")
    train.add_argument("--threads", type=int, default=2)
    train.set_defaults(func=_cmd_train, protocol="project")

    teach = sub.add_parser(
        "teach", parents=[common], help="soft targets of trained runs on the training faces, for distillation"
    )
    teach.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="teacher run folders (multitask)")
    teach.add_argument("--out", type=Path, required=True, help="soft-target file (.safetensors)")
    teach.add_argument("--seed", type=int, default=0)
    teach.add_argument("--threads", type=int, default=2)
    teach.set_defaults(func=_cmd_teach, protocol="project")

    evaluate = sub.add_parser("evaluate", parents=[common], help="metrics, report and plots of a run")
    evaluate.add_argument("run", type=Path, help="run folder written by `faceattrs train`")
    evaluate.add_argument("--part", choices=["train", "val", "test"], default="test")
    evaluate.add_argument("--out", type=Path, help="report folder (default RUN/eval_PROTOCOL_PART)")
    evaluate.set_defaults(func=_cmd_evaluate)

    predict = sub.add_parser("predict", help="age, gender and ethnicity of every face in photos")
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders")
    predict.add_argument("--aligned", action="store_true", help="inputs are aligned face crops (no detection)")
    predict.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    predict.add_argument("--output", type=Path, help="write here instead of stdout")
    predict.add_argument("--annotate", type=Path, metavar="DIR", help="write annotated copies into DIR")
    predict.add_argument("--batch-size", type=int, default=32, help="faces per model batch")
    predict.add_argument("--threads", type=int, help="onnxruntime threads (default: up to 4)")
    predict.set_defaults(func=_cmd_predict)

    app = sub.add_parser("app", help="start the web app (Streamlit)")
    app.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    app.add_argument("--port", type=int, default=8501)
    app.set_defaults(func=_cmd_app)

    serve = sub.add_parser("serve", help="start the HTTP API and its HTML upload page")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, help="inference threads (default 2; env FACEATTRS_API_WORKERS)")
    serve.add_argument("--no-access-log", action="store_true")
    serve.add_argument(
        "--loop", choices=["auto", "asyncio", "uvloop"], default="auto", help="event loop (auto: uvloop if installed)"
    )
    serve.add_argument(
        "--http",
        choices=["auto", "h11", "httptools"],
        default="auto",
        help="HTTP parser (auto: httptools if installed)",
    )
    serve.set_defaults(func=_cmd_serve)

    export = sub.add_parser("export", parents=[common], help="calibrate, export to ONNX and score a multitask run")
    export.add_argument("run", type=Path)
    export.add_argument("--out", type=Path, default=Path("src/faceattrs/assets"))
    export.add_argument("--coverage", type=float, default=0.9, help="target coverage of the age range")
    export.add_argument("--version", help="model version written to metadata.json (default: the run's, else 1)")
    export.add_argument(
        "--score-only",
        action="store_true",
        help="re-score the model already in --out (same ONNX and calibration) and rewrite its report and card",
    )
    export.add_argument(
        "--validation-only",
        action="store_true",
        help="score the exported model on validation only (a candidate: no test figures, card or report)",
    )
    export.set_defaults(func=_cmd_export)

    quantize = sub.add_parser(
        "quantize", parents=[common], help="an int8 copy of an exported model (scored on validation only)"
    )
    quantize.add_argument("--model-dir", type=Path, required=True, help="the exported float model")
    quantize.add_argument("--out", type=Path, required=True)
    quantize.add_argument("--version", required=True, help="model version written to metadata.json")
    # The quantiser's defaults live in faceattrs.build.quantize (not imported here: it loads onnxruntime's tools).
    quantize.add_argument(
        "--method", choices=QUANTIZE_METHODS, help="activation calibration (default: percentile, chosen on train faces)"
    )
    quantize.add_argument("--calibration-faces", type=int, help="random train faces that set the ranges (default 128)")
    quantize.set_defaults(func=_cmd_quantize)

    distill = sub.add_parser(
        "self-distill",
        parents=[common],
        help="fine-tune an exported model to read degraded faces as it reads clean ones (scored on validation only)",
    )
    distill.add_argument("--model-dir", type=Path, required=True, help="an exported multitask model (flip averaged)")
    distill.add_argument("--out", type=Path, required=True)
    distill.add_argument("--version", required=True, help="model version written to metadata.json")
    # Defaults: the shipped model's (faceattrs.build.self_distill.SelfDistillConfig; a test keeps them equal).
    distill.add_argument("--degrade", type=float, default=0.5, help="share of training faces degraded (default 0.5)")
    distill.add_argument("--epochs", type=int, default=2)
    distill.add_argument("--lr", type=float, default=1e-4, help="peak learning rate of the one-cycle schedule")
    distill.add_argument(
        "--gender-label-weight", type=float, default=1.0, help="weight of the gender labels' loss (0: outputs only)"
    )
    distill.add_argument(
        "--child-gender-weight", type=float, default=4.0, help="weight of a face aged 12 or less in it (default 4)"
    )
    distill.add_argument("--single-pass", action="store_true", help="write one pass, without flip averaging (faster)")
    distill.set_defaults(func=_cmd_self_distill)

    finetune = sub.add_parser(
        "finetune-descriptors",
        parents=[common],
        help="fine-tune the face-descriptor network on the train part's labels (validation and test unseen)",
    )
    finetune.add_argument("--net", type=Path, required=True, help="dlib network XML (tools/dlib_face_net)")
    finetune.add_argument("--out", type=Path, required=True, help="the weights to write (.safetensors)")
    finetune.add_argument("--size", type=int, default=128, help="the first network's input size (default 128)")
    # Defaults: the shipped model's (descriptor_finetune.DescriptorFinetuneConfig; a test keeps them equal).
    finetune.add_argument("--epochs", type=int, default=5)
    finetune.add_argument("--lr", type=float, default=1e-4, help="peak learning rate of the one-cycle schedule")
    finetune.add_argument(
        "--child-gender-weight", type=float, default=1.0, help="weight of a face aged 12 or less in the gender loss"
    )
    finetune.set_defaults(func=_cmd_finetune_descriptors)

    heads = sub.add_parser(
        "add-descriptor-heads",
        parents=[common],
        help="blend a face-recognition network's ethnicity and gender heads into an exported model",
    )
    heads.add_argument("--net", type=Path, required=True, help="dlib network XML (tools/dlib_face_net)")
    heads.add_argument(
        "--model-dir",
        type=Path,
        default=Path("src/faceattrs/assets"),
        help="the exported base model; heads it already has are replaced (default: the shipped model)",
    )
    heads.add_argument("--out", type=Path, required=True)
    heads.add_argument("--version", required=True, help="model version written to metadata.json")
    heads.add_argument(
        "--int8-descriptors",
        action="store_true",
        help="quantise the descriptor network to int8 (ranges from 128 train faces) before fitting the heads",
    )
    heads.add_argument(
        "--descriptor-calibration",
        choices=QUANTIZE_METHODS,
        default="minmax",
        help="how --int8-descriptors sets the activation ranges (default: minmax)",
    )
    heads.add_argument(
        "--finetuned", type=Path, help="fine-tuned weights for the descriptor network (faceattrs finetune-descriptors)"
    )
    heads.add_argument(
        "--validation-only",
        action="store_true",
        help="score the new model on validation only (to compare candidates before the test part is used)",
    )
    heads.set_defaults(func=_cmd_add_descriptor_heads)
    return parser


#: commands that train or calibrate networks: long-lived processes where reusing freed memory makes
#: PyTorch's steps faster (``training.memory``); not the servers or ``predict``
MEMORY_HUNGRY_COMMANDS = (
    _cmd_train,
    _cmd_teach,
    _cmd_evaluate,
    _cmd_export,
    _cmd_quantize,
    _cmd_self_distill,
    _cmd_finetune_descriptors,
    _cmd_add_descriptor_heads,
)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    if args.func in MEMORY_HUNGRY_COMMANDS:
        from faceattrs.training.memory import keep_freed_memory

        keep_freed_memory()
    try:
        return args.func(args)
    except (UserError, FileNotFoundError, ValueError, TypeError, RuntimeError) as exc:
        print(f"faceattrs: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("faceattrs: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
