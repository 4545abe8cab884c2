"""End-to-end speed of the photo pipeline on this machine, medians of repeated runs.

* aligned faces/s: 200x200 crops -> shared resize -> ONNX model -> calibration, batch 1 and 32;
* photos/s end to end (decode -> detect -> align -> model -> calibrate) on a
  1-megapixel photo with one face and a photo with five faces;
* in the same run, the course project's way for comparison: the whole photo resized
  to 80x80 and fed to the seed networks (age + ethnicity, exported to ONNX), if
  ``runs/seed_baselines`` holds them (trained as ``benchmarks/models.py`` says).

Usage::

    python benchmarks/pipeline_speed.py [--repeats 30]

Writes ``benchmarks/results/pipeline_speed.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from faceattrs import Analyzer
from faceattrs.data.folders import UTKFACE_DIR
from faceattrs.inference.decode import decode_image
from faceattrs.model_folder import model_identity
from results_io import save_results

IMAGES = Path(__file__).resolve().parents[1] / "tests" / "images"


def median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def seed_pipeline(runs: Path):
    """The course project's inference: the whole photo resized to 80x80, both seed networks."""
    if not (runs / "seed-age_project_s0" / "model.safetensors").exists():
        return None
    import onnxruntime as ort

    from faceattrs.build.export import export_onnx
    from faceattrs.preprocessing import to_model_input
    from faceattrs.training.checkpoint import load_weights
    from faceattrs.training.recipes import build_recipe

    sessions = []
    for name in ("seed-age", "seed-ethnicity"):
        recipe = build_recipe(name)
        model = load_weights(recipe.build_model(), runs / f"{name}_project_s0" / "model.safetensors").eval()
        sessions.append(ort.InferenceSession(export_onnx(model, recipe, tta_flip=False)))

    def run(data: bytes) -> None:
        x = to_model_input(decode_image(data), 80)[None]
        for session in sessions:
            session.run(None, {"images": x})

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--seed-runs", type=Path, default=Path("runs/seed_baselines"))
    args = parser.parse_args()
    analyzer = Analyzer()
    crops = np.stack(
        [np.asarray(Image.open(p).convert("RGB")) for p in sorted(UTKFACE_DIR.iterdir())[:64]]
        if UTKFACE_DIR.is_dir()
        else [analyzer.analyze(IMAGES / "astronaut.jpg")[0].crop] * 64
    )
    results: dict[str, float] = {}
    for batch in (1, 32):
        sec = median_seconds(lambda b=batch: analyzer.model.predict(crops[:b], batch_size=b), args.repeats)
        results[f"aligned_faces_per_s_batch{batch}"] = batch / sec
    photos = {"1 face, 1024x1024 (1.0 MP)": "astronaut_1mp.jpg", "5 faces, 1200x500 (0.6 MP)": "group_5.jpg"}
    seed = seed_pipeline(args.seed_runs)
    for label, name in photos.items():
        data = (IMAGES / name).read_bytes()
        sec = median_seconds(lambda d=data: analyzer.analyze(d), args.repeats)
        results[f"photo_ms[{label}]"] = 1000 * sec
        if seed is not None:
            results[f"seed_photo_ms[{label}]"] = 1000 * median_seconds(lambda d=data: seed(d), args.repeats)
    summary = {"model": model_identity(), "cpu_cores": os.cpu_count(), "repeats": args.repeats, "results": results}
    lines = ["| measurement | faceattrs | seed networks (whole photo at 80x80) |", "|---|---|---|"]
    for batch in (1, 32):
        lines.append(f"| aligned faces/s, batch {batch} | {results[f'aligned_faces_per_s_batch{batch}']:.0f} | — |")
    for label in photos:
        seed_ms = results.get(f"seed_photo_ms[{label}]")
        lines.append(
            f"| photo end to end, {label}: median ms | {results[f'photo_ms[{label}]']:.1f} | "
            + (f"{seed_ms:.1f} (no detection: one guess for the whole photo) |" if seed_ms else "not measured |")
        )
    md = "\n".join(lines) + f"\n\n{os.cpu_count()} CPU cores, median of {args.repeats} runs.\n"
    save_results("pipeline_speed", summary, md)


if __name__ == "__main__":
    main()
