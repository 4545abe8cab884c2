"""Does the model give the same answers on every x86 CPU?

onnxruntime picks its int8 kernels by CPU. With VNNI (this machine) a uint8 x int8 dot product is
summed in int32. Without it (AVX2 and early AVX-512 CPUs, still common) pairs of products are first
added into int16, which saturates when the int8 weights use all 8 bits (255 * 127 * 2 > 32767), and
the outputs change on those CPUs only (onnxruntime issues 5849, 6004, 14642). This benchmark runs the
model on validation crops twice, natively and under QEMU's user-mode emulation of a CPU without
VNNI (``qemu-x86_64 -cpu Haswell``: AVX2, no AVX-512, no VNNI; each run records the features numpy
detects), and compares what a user would see: the age, the ends of its range, the ethnicity and
gender probabilities and their accuracy on the faces' labels. Float kernels also take other code
paths on the two CPUs, but they differ only in the last bits; the int8 kernels can differ by far more.

Needs Debian's ``qemu-user`` (``apt-get install qemu-user``). Validation part only.

Usage::

    python benchmarks/portability.py [--faces N] [--model-dir DIR] [--cpu Haswell]

Writes ``benchmarks/results/portability.json`` and ``.md``; with ``--model-dir`` (a candidate
folder) into that folder instead.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import accuracy_score

from faceattrs.data.folders import UTKFACE_DIR
from faceattrs.data.labels import parse_utkface_name
from faceattrs.data.split import read_split
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.model_folder import model_identity
from results_io import RESULTS, save_results  # sibling script: python puts benchmarks/ on the path

FEATURES = ("AVX2", "AVX512F", "AVX512VNNI")


def predict_to_file(model_dir: str, crops_file: str, out_file: str) -> None:
    """The worker: calibrated outputs for the saved crops, and the CPU features this process sees."""
    from numpy._core._multiarray_umath import __cpu_features__

    p = AttributeModel(Path(model_dir) if model_dir else None, threads=2).predict(np.load(crops_file))
    features = np.array([bool(__cpu_features__.get(f)) for f in FEATURES])
    outputs = {"age": p.age, "low": p.age_low, "high": p.age_high, "eth": p.ethnicity_proba, "gen": p.gender_proba}
    np.savez(out_file, cpu=features, **outputs)


def run_worker(prefix: list[str], model_dir: Path | None, crops_file: Path, out_file: Path) -> dict[str, np.ndarray]:
    command = [*prefix, sys.executable, __file__, "--worker", str(model_dir or ""), str(crops_file), str(out_file)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} ... failed:\n{done.stderr[-2000:]}")
    return dict(np.load(out_file))


def compare(native: dict, other: dict, labels: list) -> dict:
    ethnicity = np.array([r.race for r in labels])
    gender = np.array([r.gender for r in labels])

    def largest(key: str) -> float:
        return float(np.abs(native[key] - other[key]).max())

    return {
        "age_mean_abs_diff": float(np.abs(native["age"] - other["age"]).mean()),
        "age_max_abs_diff": largest("age"),
        "range_end_max_abs_diff": max(largest("low"), largest("high")),
        "ethnicity_same": float((native["eth"].argmax(1) == other["eth"].argmax(1)).mean()),
        "gender_same": float((native["gen"].argmax(1) == other["gen"].argmax(1)).mean()),
        "ethnicity_proba_max_abs_diff": largest("eth"),
        "gender_proba_max_abs_diff": largest("gen"),
        "ethnicity_accuracy": [float(accuracy_score(ethnicity, r["eth"].argmax(1))) for r in (native, other)],
        "gender_accuracy": [float(accuracy_score(gender, r["gen"].argmax(1))) for r in (native, other)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=256, help="validation faces sampled (seed 0)")
    parser.add_argument("--model-dir", type=Path, help="a candidate model folder (default: the shipped model)")
    parser.add_argument("--cpu", default="Haswell", help="QEMU CPU model to emulate (one without VNNI)")
    args = parser.parse_args()
    if platform.machine() != "x86_64":
        raise SystemExit("this compares onnxruntime's x86 kernels: run it on an x86_64 machine")
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        raise SystemExit("qemu-x86_64 not found: apt-get install qemu-user")

    names = sorted(n for n, part in read_split().items() if part == "val")
    names = [names[i] for i in np.sort(np.random.default_rng(0).choice(len(names), args.faces, replace=False))]
    labels = [parse_utkface_name(n) for n in names]
    crops = np.stack([np.asarray(Image.open(UTKFACE_DIR / n).convert("RGB")) for n in names])
    with tempfile.TemporaryDirectory() as tmp:
        crops_file = Path(tmp) / "crops.npy"
        np.save(crops_file, crops)
        native = run_worker([], args.model_dir, crops_file, Path(tmp) / "native.npz")
        emulated = run_worker([qemu, "-cpu", args.cpu], args.model_dir, crops_file, Path(tmp) / "emulated.npz")

    cpus = {"native": native.pop("cpu"), args.cpu: emulated.pop("cpu")}
    report = {
        "model": model_identity(args.model_dir),
        "part": "val",
        "faces": len(names),
        "cpu_features": {name: dict(zip(FEATURES, map(bool, f), strict=True)) for name, f in cpus.items()},
        "difference": compare(native, emulated, labels),
    }
    d = report["difference"]

    def has(cpu: str) -> str:
        return ", ".join(f for f, on in report["cpu_features"][cpu].items() if on) or "none of them"

    md = (
        f"| outputs, this CPU ({has('native')}) against an emulated {args.cpu} ({has(args.cpu)}) | difference |\n"
        "|---|---|\n"
        "| age, mean / largest absolute difference | "
        f"{d['age_mean_abs_diff']:.3f} / {d['age_max_abs_diff']:.1f} years |\n"
        f"| ends of the 90% range, largest absolute difference | {d['range_end_max_abs_diff']:.1f} years |\n"
        f"| same ethnicity / gender shown | {100 * d['ethnicity_same']:.1f}% / {100 * d['gender_same']:.1f}% |\n"
        f"| ethnicity / gender probabilities, largest absolute difference | "
        f"{d['ethnicity_proba_max_abs_diff']:.4f} / {d['gender_proba_max_abs_diff']:.4f} |\n"
        f"| ethnicity accuracy, this CPU / emulated | {100 * d['ethnicity_accuracy'][0]:.1f}% / "
        f"{100 * d['ethnicity_accuracy'][1]:.1f}% |\n"
        f"| gender accuracy, this CPU / emulated | {100 * d['gender_accuracy'][0]:.1f}% / "
        f"{100 * d['gender_accuracy'][1]:.1f}% |\n\n"
        f"{len(names)} random validation crops (seed 0), aligned, through the model directly; "
        "CPU features as numpy detects them in each process; "
        f"QEMU user-mode emulation (`qemu-x86_64 -cpu {args.cpu}`). "
        f"Model version {report['model']['version']}.\n"
    )
    save_results("portability", report, md, args.model_dir or RESULTS)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        predict_to_file(*sys.argv[2:])
    else:
        main()
