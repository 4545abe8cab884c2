"""Should the export move from torch's legacy ONNX exporter to the torch.export-based one?

torch 2.13 warns that the TorchScript-based exporter (``dynamo=False``, what ``faceattrs export``
uses) is deprecated. This compares the two on the shipped architecture (EfficientNet-Lite1 at the
shipped input size, flip averaging inside the graph, random weights: file size, graph and speed do
not depend on the weight values): export time, file size, largest difference from PyTorch, and
onnxruntime faces/s at batch 32, the two sessions timed in alternating rounds in this process.

The new exporter needs ``onnxscript``, which faceattrs does not depend on::

    pip install onnxscript
    python benchmarks/onnx_exporters.py [--rounds 5] [--repeats 30]

Writes ``benchmarks/results/onnx_exporters.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import onnxruntime as ort
import torch

from faceattrs.build.export import OUTPUT_NAMES, OnnxGraph, export_onnx
from faceattrs.training.recipes import build_recipe
from results_io import save_results


def export_with_torch_export(graph: OnnxGraph, size: int) -> bytes:
    """The same graph as :func:`export_onnx`, through the torch.export-based exporter."""
    example = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    program = torch.onnx.export(
        graph,
        (example,),
        dynamo=True,
        input_names=["images"],
        output_names=OUTPUT_NAMES["multitask"],
        dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
    )
    return program.model_proto.SerializeToString()


def session(onnx_bytes: bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Idle threads of one session would otherwise spin while the other runs and steal its cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_bytes, options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds")
    parser.add_argument("--repeats", type=int, default=30, help="timed batches per round and exporter")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    recipe = build_recipe("multitask", pretrained=False, backbone="lite1")
    graph = OnnxGraph(recipe.build_model(), recipe, tta_flip=True)
    size = recipe.input_size
    exporters = {
        "legacy (TorchScript), shipped": lambda: export_onnx(graph.model, recipe, tta_flip=True),
        "torch.export-based": lambda: export_with_torch_export(graph, size),
    }
    faces = np.random.default_rng(0).integers(0, 256, (32, size, size, 3), dtype=np.uint8)
    with torch.no_grad():
        reference = [t.numpy() for t in graph(torch.from_numpy(faces))]
    rows: dict[str, dict] = {}
    sessions = {}
    for name, export in exporters.items():
        start = time.perf_counter()
        onnx_bytes = export()
        seconds = time.perf_counter() - start
        sessions[name] = session(onnx_bytes, args.threads)
        outputs = sessions[name].run(None, {"images": faces})
        for _ in range(3):  # warm-up: the first batches of a session pay for its memory arenas
            sessions[name].run(None, {"images": faces})
        diff = max(float(np.abs(a - b).max()) for a, b in zip(outputs, reference, strict=True))
        rows[name] = {"export_s": seconds, "mb": len(onnx_bytes) / 1e6, "max_abs_diff": diff, "faces_per_s": []}
    for _ in range(args.rounds):
        for name, sess in sessions.items():
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                sess.run(None, {"images": faces})
                times.append(time.perf_counter() - start)
            rows[name]["faces_per_s"].append(len(faces) / float(np.median(times)))
    lines = ["| exporter | export s | MB | max. difference from PyTorch | faces/s at batch 32: median (per round) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, r in rows.items():
        speeds = f"{np.median(r['faces_per_s']):.0f} (" + ", ".join(f"{s:.0f}" for s in r["faces_per_s"]) + ")"
        lines.append(f"| {name} | {r['export_s']:.1f} | {r['mb']:.1f} | {r['max_abs_diff']:.1e} | {speeds} |")
    lines.append(
        f"\nEfficientNet-Lite1 at {size} px with flip averaging, random weights; torch {torch.__version__}, "
        f"onnxruntime {ort.__version__}, {args.threads} threads, {platform.machine()}; median of "
        f"{args.repeats} batches per round, {args.rounds} alternating rounds."
    )
    setup = {"torch": torch.__version__, "onnxruntime": ort.__version__, "threads": args.threads}
    save_results("onnx_exporters", {"setup": setup, "rows": rows}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
