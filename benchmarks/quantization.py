"""Is an int8 copy of a float model as good and faster? Measured on the validation part.

The issue allows fp16 or int8 only if the measured quality loss is negligible. EfficientNet-Lite
was designed to quantise well (ReLU6, no squeeze-excitation), and this CPU has AVX-512 VNNI
integer dot products, so static int8 quantisation (onnxruntime, QDQ format, per-channel weights
in 7 bits: ``faceattrs.build.quantize``) is the candidate. Activation ranges are calibrated on
faces of the *train* part, never on the validation or test faces the model is judged on.

Rows: the float32 model and each int8 calibration method, scored on all validation faces (the
float model's temperatures and age interval applied to every model's logits, so accuracy and age
error compare the networks alone), with faces/s at batch 1 and 32 timed side by side in this
process on prepared 128 px faces.

Usage::

    python benchmarks/quantization.py --model-dir DIR [--calibration-faces 128] [--methods minmax percentile]

DIR is a float model folder: the shipped model is int8 itself since version 14 (whose first
network is the thirteenth's quantised by ``faceattrs quantize``). The saved table measured version
6, the first network of versions 9 to 11: the int8 graph the quantiser writes from version 9's file
does not load ("Duplicate definition of name"); the same model before ``compact_names`` quantises,
so the cause is in what that step changes (not yet found).

Writes ``benchmarks/results/quantization.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from faceattrs.build.quantize import METHODS, calibration_sample, quantize_int8
from faceattrs.data.cache import load_faces
from faceattrs.evaluation.metrics import Predictions
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.model_folder import MODEL_FILE, model_identity
from faceattrs.training.protocols import project_protocol
from models import time_model  # sibling scripts: python puts benchmarks/ on the path
from multitask_ablations import SCORE_HEADER, score_cells, scores
from results_io import save_results

DATA = Path("../shared/datasets/utkface/UTKFace")


def quantize(fp32: Path, calibration: np.ndarray, method: str, work: Path) -> Path:
    out = work / f"int8_{method}.onnx"
    onnx.save(quantize_int8(fp32, calibration, method), out)
    return out


def session(path: Path | bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Idle threads of one session would otherwise spin while another session runs and steal its cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path if isinstance(path, bytes) else str(path), options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The calibrator holds every activation of every calibration face in memory (about 45 MB a face
    # here): 512 faces ran out of 24 GB. Its CalibMaxIntermediateOutputs option, meant to bound that,
    # drops the data instead of merging it in onnxruntime 1.32, so the sample is kept small.
    parser.add_argument("--calibration-faces", type=int, default=128, help="random train faces")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--model-dir", type=Path, required=True, help="a float model folder")
    args = parser.parse_args()
    model_dir = args.model_dir
    float_model = AttributeModel(model_dir, threads=args.threads)  # checks the sha256; its calibration is reused
    size = float_model.input_size
    float_row = f"float32 (version {float_model.metadata['version']})"
    parts = project_protocol(load_faces(DATA, size, progress=False))
    calibration = calibration_sample(parts["train"].images, args.calibration_faces)
    val = parts["val"]

    with tempfile.TemporaryDirectory() as tmp:
        models = {float_row: model_dir / MODEL_FILE}
        for method in args.methods:
            models[f"int8 static, {method} calibration"] = quantize(
                model_dir / MODEL_FILE, calibration, method, Path(tmp)
            )
        sessions = {name: session(path, args.threads) for name, path in models.items()}
        sizes = {name: path.stat().st_size / 2**20 for name, path in models.items()}
        rows = {}
        for name, s in sessions.items():
            outs = [
                s.run(None, {"images": np.ascontiguousarray(val.images[i : i + 64])}) for i in range(0, len(val), 64)
            ]
            logits = {o.name: np.concatenate([r[k] for r in outs]) for k, o in enumerate(s.get_outputs())}
            c = float_model.calibrate(logits)
            preds = Predictions(age=c.age, ethnicity_proba=c.ethnicity_proba, gender_proba=c.gender_proba)
            inside = (val.age >= c.age_low) & (val.age <= c.age_high)
            rows[name] = {**scores(preds, val), "interval_coverage": float(inside.mean()), "file_mb": sizes[name]}
        # Only the network differs between the rows, so they are timed on the prepared 128 px faces
        # (no resize: models.py times whole models from 200 px crops).
        for batch in (1, 32):
            for name, s in sessions.items():
                run = lambda b, s=s: s.run(None, {"images": b})  # noqa: E731
                rows[name][f"faces_per_s_batch{batch}"] = time_model(run, size, val.images, batch, args.repeats)

    base = rows[float_row]
    result = {
        "model": model_identity(model_dir),
        "validation_faces": len(val),
        "calibration_faces": args.calibration_faces,
        "cpu_cores": os.cpu_count(),
        "threads": args.threads,
        "rows": rows,
    }
    lines = [
        f"| model (validation part) | {SCORE_HEADER} | 90% range coverage | MB | faces/s b1 | faces/s b32 "
        "| b32 speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {score_cells(r)} | {100 * r['interval_coverage']:.1f}% | {r['file_mb']:.1f} | "
            f"{r['faces_per_s_batch1']:.0f} | {r['faces_per_s_batch32']:.0f} | "
            f"{r['faces_per_s_batch32'] / base['faces_per_s_batch32']:.2f}× |"
        )
    lines.append(
        f"\n{len(val)} validation faces; int8 activation ranges calibrated on {args.calibration_faces} random "
        f"train faces; onnxruntime {ort.__version__}, {args.threads} threads; median of {args.repeats} runs."
    )
    md = "\n".join(lines) + "\n"
    save_results("quantization", result, md)


if __name__ == "__main__":
    main()
