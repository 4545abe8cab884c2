"""The shipped multitask model next to the seed baselines, on the same test split, in one run.

Quality: every model scored on the project's test part (natural class
balance, all ages), through onnxruntime. Speed: aligned faces per second at
batch 1 and batch 32, from 200x200 uint8 crops (the shared resize included)
through onnxruntime on this machine's cores, all models timed in the same
process in alternating rounds, median of the timed batches.

Usage::

    # once: the course project's two networks, trained on the project split with seed 0 (minutes each)
    faceattrs train --recipe seed-age --out runs/seed_baselines/seed-age_project_s0
    faceattrs train --recipe seed-ethnicity --out runs/seed_baselines/seed-ethnicity_project_s0
    python benchmarks/models.py [--repeats 30] [--compare EARLIER_MODEL_DIR ...]

Writes ``benchmarks/results/models.json`` and ``models.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from faceattrs.build.export import export_onnx, onnx_predictions
from faceattrs.calibration import softmax
from faceattrs.data.cache import load_faces
from faceattrs.data.folders import UTKFACE_DIR
from faceattrs.evaluation.metrics import Predictions, evaluate_predictions
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.model_folder import model_identity
from faceattrs.preprocessing import to_model_input
from faceattrs.training.checkpoint import load_weights
from faceattrs.training.protocols import project_protocol
from faceattrs.training.recipes import build_recipe
from results_io import save_results


class SeedOnnx:
    """A seed network exported to ONNX, scored and timed like the shipped model."""

    def __init__(self, name: str, run: Path, threads: int) -> None:
        self.recipe = build_recipe(name)
        model = load_weights(self.recipe.build_model(), run / "model.safetensors").eval()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(export_onnx(model, self.recipe, tta_flip=False), options)
        self.input_size = self.recipe.input_size

    def raw(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"images": batch})[0]


def batch_seconds(raw, size: int, crops: np.ndarray, batch: int, repeats: int, warmup: int = 2) -> list[float]:
    """Seconds per batch of aligned 200x200 crops, resize included, after ``warmup`` untimed batches."""
    times = []
    for r in range(repeats + warmup):
        chunk = crops[(r * batch) % len(crops) :][:batch]
        t0 = time.perf_counter()
        raw(np.stack([to_model_input(c, size) for c in chunk]))
        if r >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def time_model(raw, size: int, crops: np.ndarray, batch: int, repeats: int) -> float:
    """Median faces/s from aligned 200x200 crops, resize included."""
    return batch / statistics.median(batch_seconds(raw, size, crops, batch, repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed batches per model and batch size")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds the batches are spread over")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--seed-runs", type=Path, default=Path("runs/seed_baselines"))
    parser.add_argument(
        "--compare", type=Path, nargs="*", default=[], help="earlier model folders (model.onnx + metadata.json)"
    )
    args = parser.parse_args()

    shipped = AttributeModel(threads=args.threads)
    earlier = {
        f"multitask v{(m := AttributeModel(d, threads=args.threads)).metadata['version']}": m for d in args.compare
    }
    # the course project's networks, when trained (docs/history.md has their figures either way)
    seeds = {
        name: SeedOnnx(name, args.seed_runs / f"{name}_project_s0", args.threads)
        for name in ("seed-ethnicity", "seed-age")
        if (args.seed_runs / f"{name}_project_s0" / "model.safetensors").is_file()
    }
    rows: dict[str, dict] = {}

    test = project_protocol(load_faces(UTKFACE_DIR, shipped.input_size, progress=False))["test"]
    _, _, preds = onnx_predictions(shipped, test.images)
    rows["multitask (shipped)"] = evaluate_predictions(preds, test.age, test.gender, test.race)
    for name, model in earlier.items():
        _, _, preds = onnx_predictions(model, test.images)
        rows[name] = evaluate_predictions(preds, test.age, test.gender, test.race)
    seed_test = project_protocol(load_faces(UTKFACE_DIR, 80, progress=False))["test"] if seeds else None
    for name, seed in seeds.items():
        out = np.concatenate(
            [seed.raw(np.ascontiguousarray(seed_test.images[i : i + 256])) for i in range(0, len(seed_test), 256)]
        )
        p = Predictions(age=out) if name == "seed-age" else Predictions(ethnicity_proba=softmax(out))
        rows[name] = evaluate_predictions(p, seed_test.age, seed_test.gender, seed_test.race)

    # 200x200 aligned crops, as users pass them: decode the test files themselves.
    from PIL import Image

    crops = np.stack([np.asarray(Image.open(UTKFACE_DIR / n).convert("RGB")) for n in test.names[:256]])
    speed: dict[str, dict[str, float]] = {name: {} for name in rows}
    runners = {"multitask (shipped)": (shipped.raw, shipped.input_size)}
    runners |= {n: (m.raw, m.input_size) for n, m in earlier.items()} | {
        n: (s.raw, s.input_size) for n, s in seeds.items()
    }
    # Models take turns in several rounds, so a slow spell of this shared machine hits them all alike.
    per_round = max(1, args.repeats // args.rounds)
    seconds: dict[str, dict[int, list[float]]] = {name: {1: [], 32: []} for name in runners}
    for _ in range(args.rounds):
        for batch in (1, 32):
            for name, (raw, size) in runners.items():
                seconds[name][batch] += batch_seconds(raw, size, crops, batch, per_round)
    for name, by_batch in seconds.items():
        speed[name] = {f"batch{b}": b / statistics.median(t) for b, t in by_batch.items()}

    summary = {
        "model": model_identity(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, onnxruntime {ort.__version__}, "
        f"{args.threads} intra-op threads",
        "test_faces": len(test),
        "timing": f"median of {args.rounds} x {per_round} batches per model and batch size, in {args.rounds} "
        "alternating rounds",
        "models": {name: {"metrics": rows[name], "faces_per_s": speed[name]} for name in rows},
    }
    md = markdown(summary)
    save_results("models", summary, md)


def markdown(summary: dict) -> str:
    def pct(m, task, key="accuracy"):
        return f"{100 * m[task][key]:.1f}%" if task in m else "—"

    lines = [
        '| model | age MAE | age RMSE | CS@5 | ethnicity acc. | ethnicity macro-F1 | "others" recall | '
        "gender acc. | faces/s batch 1 | faces/s batch 32 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in summary["models"].items():
        m, s = row["metrics"], row["faces_per_s"]
        age = m.get("age")
        lines.append(
            f"| {name} | {age['mae']:.2f} | {age['rmse']:.2f} | {100 * age['cs5']:.1f}% | "
            if age
            else f"| {name} | — | — | — | "
        )
        eth = m.get("ethnicity")
        lines[-1] += (
            f"{pct(m, 'ethnicity')} | {eth['macro_f1']:.3f} | {100 * eth['recall']['others']:.1f}% | "
            if eth
            else "— | — | — | "
        )
        lines[-1] += f"{pct(m, 'gender')} | {s['batch1']:.0f} | {s['batch32']:.0f} |"
    lines.append(f"\n{summary['test_faces']} test faces; {summary['machine']}; {summary['timing']}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
