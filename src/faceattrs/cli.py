"""The ``faceattrs`` command line: the user commands first, then the ones that build the model.

    faceattrs predict PATH...            age, gender and ethnicity of every face in photos (CSV, JSON lines, Parquet;
                                         resumable; --engine ray for a cluster: faceattrs.batch)
    faceattrs app                        the web app on http://127.0.0.1:8501
    faceattrs serve                      the HTTP API and its upload page on http://127.0.0.1:8000
    faceattrs data inspect|split DIR     counts, label quirks and duplicates; the committed split
    faceattrs train --out RUN            train a recipe (the shipped model's first network by default)
    faceattrs evaluate RUN_OR_MODEL      metrics, report and plots of a run or a model folder on one part
    faceattrs build                      the shipped model from the data, every step (faceattrs.build.pipeline)

Defaults come from the configuration dataclasses and the functions the commands call, never from
copies here. Expected failures (a missing folder, a bad argument) print one line on stderr and exit
with 2; there is no stack trace for a user to read.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path

from faceattrs.data.folders import FAIRFACE_DIR, FAIRFACE_SPLIT, UTKFACE_DIR, UTKFACE_SPLIT


class UserError(Exception):
    """An error the user can fix; shown as one line."""


# --- user commands ---------------------------------------------------------------------------

#: Suffixes that mark a file in a folder as a photo even when it cannot be read, so that a damaged
#: or empty photo gets an error row instead of vanishing from the results.
IMAGE_SUFFIXES = frozenset(
    (".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif")
)


def _iter_inputs(paths: list[Path]) -> tuple[list[Path], int]:
    """Files as given; folders walked recursively. Returns the inputs and how many folder entries were skipped.

    A regular file in a folder is kept when its content is an image or its name ends in an image
    suffix (:data:`IMAGE_SUFFIXES`); anything else there (notes, ``.DS_Store``, pipes, sockets, devices,
    dangling links) is skipped and counted, never opened. A path named explicitly is always kept: a
    bad one gets an error row.
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
            entries = [f for f in sorted(path.rglob("*")) if not f.is_dir()]
            images = [f for f in entries if f.is_file() and is_image(f)]  # is_file: regular files only
            out.extend(images)
            skipped += len(entries) - len(images)
        else:
            out.append(path)  # a bad file named explicitly gets an error row
    return out, skipped


def _cmd_predict(args: argparse.Namespace) -> int:
    from faceattrs.batch.outputs import OutputError, ShardedOutput, output_format
    from faceattrs.batch.run import local_engine, predict_files
    from faceattrs.inference.analyzer import Analyzer
    from faceattrs.inference.annotate import annotate
    from faceattrs.inference.records import columns, default_ethnicities

    fmt = output_format(args.format, args.output)
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if args.output is not None and args.output.is_dir() and fmt != "parquet":
        raise UserError(f"--output {args.output} is a folder: give the name of the file to write")
    if args.output is not None and not args.output.parent.is_dir():
        raise UserError(f"--output {args.output}: the folder {args.output.parent} does not exist")
    if args.annotate is not None and args.annotate.exists() and not args.annotate.is_dir():
        raise UserError(f"--annotate {args.annotate} is a file: give a folder for the annotated copies")
    if args.engine == "ray" and args.annotate is not None:
        raise UserError("--annotate works with the local engine only (the Ray engine keeps photos on its workers)")
    inputs, skipped = _iter_inputs(args.paths)
    if args.engine == "ray":  # the workers load the model; this process only writes the rows
        try:
            from faceattrs.batch.ray_engine import ray_engine
        except ImportError:
            raise UserError("the Ray engine needs Ray: pip install 'faceattrs[ray]'") from None
        engine = ray_engine(aligned=args.aligned, workers=args.workers, address=args.ray_address)
    else:

        def save_annotated(i: int, result) -> None:
            if result.image is not None:
                name = f"{i:05d}_{Path(result.source).stem}.jpg"
                annotate(result.image, result.faces).save(args.annotate / name, quality=90)
                result.image = None

        if args.annotate:
            args.annotate.mkdir(parents=True, exist_ok=True)
        engine = local_engine(
            Analyzer(threads=args.threads), args.aligned, args.batch_size, save_annotated if args.annotate else None
        )
    try:
        with ShardedOutput(args.output, fmt, columns(default_ethnicities()), resume=args.resume) as output:
            summary = predict_files(inputs, engine, output, shard_files=args.shard_size)
    except OutputError as exc:
        raise UserError(str(exc)) from None
    summary.skipped = skipped
    print(summary.line(), file=sys.stderr)
    return 1 if summary.error else 0


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
        "--client.showErrorDetails", "none",  # an unexpected error shows no stack trace with server paths
        "--client.showErrorLinks", "false",
    ]  # fmt: skip
    print(f"faceattrs app on http://{args.host}:{args.port} (Ctrl+C stops it)", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)  # become the server, so stopping this process stops the app


def _cmd_serve(args: argparse.Namespace) -> int:
    from faceattrs.api.server import ApiSettings, create_app
    from faceattrs.api.serving import serve

    settings = ApiSettings.from_env(
        workers=args.workers, limit_concurrency=args.limit_concurrency, timeout_keep_alive=args.timeout_keep_alive
    )
    app = create_app(settings)
    print(f"faceattrs API on http://{args.host}:{args.port} (docs at /docs)", file=sys.stderr)
    serve(app, settings, host=args.host, port=args.port, loop=args.loop, http=args.http,
          access_log=not args.no_access_log)  # fmt: skip
    return 0


# --- building the model ----------------------------------------------------------------------


def _is_fairface(folder: Path) -> bool:
    """A FairFace folder has its labels in ``labels.csv``; UTKFace's are in the file names."""
    return (folder / "labels.csv").is_file()


def _cmd_inspect(args: argparse.Namespace) -> int:
    from faceattrs.data.inspect import summarize
    from faceattrs.data.utkface import scan_utkface

    if _is_fairface(args.folder):
        from faceattrs.data.fairface import read_fairface, summarize_fairface
        from faceattrs.data.split import read_split

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the summary lists the skipped rows itself
            scan = read_fairface(args.folder, decode=not args.no_decode)
        split = read_split(FAIRFACE_SPLIT) if FAIRFACE_SPLIT.is_file() else None
        print(summarize_fairface(scan, split))
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the summary lists the quirks itself
        scan = scan_utkface(args.folder, decode=not args.no_decode)
    print(summarize(scan, show_groups=args.groups))
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    from collections import Counter

    from faceattrs.data.split import make_split, write_split
    from faceattrs.data.utkface import scan_utkface

    if _is_fairface(args.folder):
        from faceattrs.data.fairface import write_fairface_split

        out = args.out or FAIRFACE_SPLIT
        assignment = write_fairface_split(out, args.folder, seed=args.seed)
    else:
        out = args.out or UTKFACE_SPLIT
        scan = scan_utkface(args.folder)
        assignment = make_split(scan.records, seed=args.seed)
        write_split(out, scan.records, assignment)
    counts = Counter(assignment.values())
    print(f"wrote {out}: " + ", ".join(f"{p} {counts[p]}" for p in ("train", "val", "test")))
    return 0


def _parse_settings(pairs: list[str]) -> dict[str, object]:
    """``["epochs=3", "backbone=lite0", "augment=false"]`` -> typed overrides."""
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


def _load_parts(size: int, protocol: str, task: str, args: argparse.Namespace, seed: int, fairface: bool = False):
    """The train/val/test faces of ``protocol``; UTKFace's, and FairFace's too with ``fairface``."""
    from faceattrs.data.cache import load_faces
    from faceattrs.training.protocols import make_parts, project_parts

    if fairface:
        if protocol != "project":
            raise UserError("FairFace is part of the project protocol only")
        return project_parts(size, args.data, args.split, args.fairface_data, args.fairface_split)
    return make_parts(load_faces(args.data, size), protocol, task, seed, args.split)


def _cmd_train(args: argparse.Namespace) -> int:
    from faceattrs.training.early_stopping import PercentileStop
    from faceattrs.training.engine import patience_rule, train
    from faceattrs.training.recipes import build_recipe

    recipe = build_recipe(args.recipe, **_parse_settings(args.set))
    rules = None  # the recipe's own
    if args.no_early_stop:
        rules = []
    elif args.patience is not None or args.percentile_stop is not None:
        rules = [patience_rule(recipe, args.patience)] if args.patience is not None else []
        if args.percentile_stop is not None:
            rules.append(PercentileStop(threshold=args.percentile_stop))
    fairface = bool(recipe.settings.get("fairface"))
    parts = _load_parts(recipe.input_size, args.protocol, recipe.task, args, args.seed, fairface)
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


def _cmd_evaluate(args: argparse.Namespace) -> int:
    """A training run (PyTorch) or a model folder (its ONNX file, as users run it) on one part."""
    from faceattrs.evaluation.report import write_report

    target = args.target
    if (target / "metadata.json").is_file():
        from faceattrs.build.export import score_part
        from faceattrs.inference.attribute_model import AttributeModel

        model = AttributeModel(target)
        faces = _load_parts(model.input_size, "project", "multitask", args, 0, args.fairface)[args.part]
        metrics, preds = score_part(model, faces, model.metadata["calibration"])
        metrics["model"] = {"folder": str(target), "version": model.metadata["version"], "part": args.part}
        out = args.out or target / f"eval_{args.part}"
        title, history = f"model {model.metadata['version']} (ONNX), {args.part} part", None
    elif (target / "config.json").is_file():
        from faceattrs.evaluation.metrics import evaluate_group_predictions, evaluate_predictions
        from faceattrs.training.checkpoint import load_weights
        from faceattrs.training.engine import predict
        from faceattrs.training.recipes import build_recipe

        config = json.loads((target / "config.json").read_text())
        recipe = build_recipe(config["recipe"], **config.get("settings", {}))
        protocol = config.get("protocol", "project")
        model = load_weights(recipe.build_model(), target / "model.safetensors")
        fairface = args.fairface or bool(config.get("settings", {}).get("fairface"))
        faces = _load_parts(recipe.input_size, protocol, recipe.task, args, config["seed"], fairface)[args.part]
        preds = predict(model, recipe, faces)
        exact = faces.exact_age
        metrics = evaluate_predictions(preds.subset(exact), faces.age[exact], faces.gender[exact], faces.race[exact])
        if not exact.all():
            low, high = faces.age_interval()
            metrics["fairface"] = evaluate_group_predictions(
                preds.subset(~exact), low[~exact], high[~exact], faces.gender[~exact], faces.race[~exact]
            )
        preds = preds.subset(exact)
        metrics["model"] = {"run": str(target), "recipe": recipe.name, "protocol": protocol, "part": args.part}
        history_file = target / "history.json"
        history = json.loads(history_file.read_text()) if history_file.exists() else None
        out = args.out or target / f"eval_{protocol}_{args.part}"
        title = f"{recipe.name} on the {protocol} protocol, {args.part} part"
    else:
        raise UserError(f"{target} is neither a training run (config.json) nor a model folder (metadata.json)")
    write_report(metrics, preds, faces.age[faces.exact_age], out, title, history)
    print(f"{_summary(metrics, args.part)}\nwrote {out}/report.md, metrics.json and plots")
    return 0


def _summary(metrics: dict, part: str) -> str:
    """One line of a part's headline figures."""
    line = f"{part}: {metrics['n']} faces"
    if "age" in metrics:
        line += f", age MAE {metrics['age']['mae']:.2f}, CS@5 {metrics['age']['cs5']:.3f}"
    if "ethnicity" in metrics:
        e = metrics["ethnicity"]
        line += f", ethnicity {e['accuracy']:.4f} (macro-F1 {e['macro_f1']:.3f})"
    if "gender" in metrics:
        line += f", gender {metrics['gender']['accuracy']:.4f}"
    if "fairface" in metrics:
        f = metrics["fairface"]
        line += (
            f"\n{part} (FairFace): {f['n']} faces, age group {f['age']['group_accuracy']:.4f}, "
            f"ethnicity {f['ethnicity']['accuracy']:.4f}, gender {f['gender']['accuracy']:.4f}"
        )
    return line


def _cmd_build(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from faceattrs.build.pipeline import BuildConfig, build

    chosen = {k: v for k, v in vars(args).items() if k in BuildConfig.__dataclass_fields__ and v is not None}
    config = replace(BuildConfig(), **chosen)
    scores = build(config)
    part = "val" if config.validation_only else "test"
    print(f"{_summary(scores[part], part)}\nmodel folder: {config.model_dir}")
    return 0


# --- the parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from faceattrs.batch.outputs import FORMATS
    from faceattrs.batch.run import DEFAULT_SHARD_FILES
    from faceattrs.build.pipeline import BuildConfig

    parser = argparse.ArgumentParser(prog="faceattrs", description="Age, gender and ethnicity from faces.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = sub.add_parser("predict", help="age, gender and ethnicity of every face in photos")
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders")
    predict.add_argument("--aligned", action="store_true", help="inputs are aligned face crops (no detection)")
    predict.add_argument("--format", choices=FORMATS, help="output format (default: --output's suffix, else csv)")
    predict.add_argument("--output", type=Path, help="write here instead of stdout (a folder of shards for Parquet)")
    predict.add_argument(
        "--resume",
        action="store_true",
        help="carry on an interrupted run: skip the files --output already holds (same path, size "
        "and modification time)",
    )
    predict.add_argument(
        "--shard-size",
        type=int,
        default=DEFAULT_SHARD_FILES,
        metavar="FILES",
        help=f"files per shard written; a killed run loses at most one (default {DEFAULT_SHARD_FILES})",
    )
    predict.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process; ray: Ray Data, in-process or on the cluster RAY_ADDRESS names",
    )
    predict.add_argument(
        "--ray-address", metavar="ADDR", help="a Ray cluster to run on (default $RAY_ADDRESS, else local)"
    )
    predict.add_argument("--workers", type=int, help="Ray engine: detection tasks and model actors (default: all CPUs)")
    predict.add_argument("--annotate", type=Path, metavar="DIR", help="write annotated copies into DIR")
    predict.add_argument("--batch-size", type=int, help="faces per model batch (default: Analyzer.analyze_many's)")
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
    serve.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto", help="event loop")
    serve.add_argument("--http", choices=["auto", "h11", "httptools"], default="auto", help="HTTP parser")
    serve.add_argument(
        "--limit-concurrency", type=int, metavar="N",
        help="connections and requests at once, 503 past it (default 64; env FACEATTRS_API_LIMIT_CONCURRENCY)",
    )  # fmt: skip
    serve.add_argument(
        "--timeout-keep-alive", type=int, metavar="S",
        help="close idle keep-alive connections after S seconds (default 5; env FACEATTRS_API_TIMEOUT_KEEP_ALIVE)",
    )  # fmt: skip
    serve.set_defaults(func=_cmd_serve)

    data = sub.add_parser("data", help="inspect a data set (UTKFace or FairFace) and make its split")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    inspect = data_sub.add_parser("inspect", help="counts, label distributions, quirks, duplicate groups")
    inspect.add_argument("folder", type=Path)
    inspect.add_argument("--groups", type=int, default=5, help="duplicate groups to list")
    inspect.add_argument("--no-decode", action="store_true", help="skip the decode check (faster)")
    inspect.set_defaults(func=_cmd_inspect)
    split = data_sub.add_parser("split", help="write the project split file")
    split.add_argument("folder", type=Path)
    split.add_argument("--out", type=Path, help=f"default {UTKFACE_SPLIT} or {FAIRFACE_SPLIT}")
    split.add_argument("--seed", type=int, default=0)
    split.set_defaults(func=_cmd_split)

    from faceattrs.training.protocols import PROTOCOLS
    from faceattrs.training.recipes import RECIPES

    data_args = argparse.ArgumentParser(add_help=False)
    data_args.add_argument("--data", type=Path, default=UTKFACE_DIR, help=f"UTKFace folder (default {UTKFACE_DIR})")
    data_args.add_argument("--split", type=Path, default=UTKFACE_SPLIT, help=f"split file (default {UTKFACE_SPLIT})")
    data_args.add_argument("--fairface-data", type=Path, default=FAIRFACE_DIR, help=f"default {FAIRFACE_DIR}")
    data_args.add_argument("--fairface-split", type=Path, default=FAIRFACE_SPLIT, help=f"default {FAIRFACE_SPLIT}")

    train = sub.add_parser("train", parents=[data_args], help="train a recipe into a run folder")
    train.add_argument("--recipe", default="multitask", choices=sorted(RECIPES), help="default: the shipped model's")
    train.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a setting of training.recipes.MultiTaskSettings, e.g. --set epochs=3",
    )  # fmt: skip
    train.add_argument("--out", type=Path, required=True, help="run folder")
    train.add_argument("--protocol", choices=PROTOCOLS, default="project", help="which faces train, tune and score")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    train.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    train.add_argument("--patience", type=int, help="stop after N epochs without improvement; keep the best")
    train.add_argument("--percentile-stop", type=float, metavar="T", help="the original percentile rule")
    train.add_argument("--no-early-stop", action="store_true", help="run every epoch")
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser("evaluate", parents=[data_args], help="metrics, report and plots on one part")
    evaluate.add_argument("target", type=Path, metavar="RUN_OR_MODEL", help="a run folder or a model folder")
    evaluate.add_argument("--part", choices=["train", "val", "test"], default="val")
    evaluate.add_argument(
        "--fairface", action="store_true", help="FairFace's faces too (a run trained on them: always)"
    )
    evaluate.add_argument("--out", type=Path, help="report folder (default: inside RUN_OR_MODEL)")
    evaluate.set_defaults(func=_cmd_evaluate)

    defaults = BuildConfig()
    build = sub.add_parser("build", help="build the shipped model from the data, every step (hours)")
    build.add_argument("--work-dir", type=Path, help=f"intermediate models, resumable (default {defaults.work_dir})")
    build.add_argument(
        "--out", type=Path, help="the model folder (default WORK_DIR/model; src/faceattrs/assets ships it)"
    )
    build.add_argument("--version", help=f"model version in metadata.json (default {defaults.version})")
    build.add_argument("--data", type=Path, help=f"UTKFace folder (default {defaults.data})")
    build.add_argument("--split", type=Path, help=f"split file (default {defaults.split})")
    build.add_argument(
        "--validation-only", action="store_true", default=None, help="score on validation only: the test part unread"
    )
    build.set_defaults(func=_cmd_build)
    return parser


#: commands that train or calibrate networks: long-lived processes where reusing freed memory makes
#: PyTorch's steps faster (``training.memory``); not the servers or ``predict``
MEMORY_HUNGRY_COMMANDS = (_cmd_train, _cmd_evaluate, _cmd_build)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    if args.func in MEMORY_HUNGRY_COMMANDS:
        from faceattrs.training.memory import keep_freed_memory

        keep_freed_memory()
    try:
        return args.func(args)
    except (UserError, OSError, ValueError, TypeError, RuntimeError) as exc:  # OSError: files and folders
        print(f"faceattrs: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("faceattrs: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
