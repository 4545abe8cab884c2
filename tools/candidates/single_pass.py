"""A model folder's first network without flip averaging (one pass), recalibrated on validation.

The exported multitask graph runs the network on the image and on its mirror image and averages
the logits; this keeps the first pass only (its three ``Gemm`` outputs), then refits the
temperatures and the age range on the validation part. The test part is not read.

Usage (from the repository root)::

    python tools/candidates/single_pass.py --model-dir runs/v6 --out runs/v6_single
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import onnx

from faceattrs.data.cache import load_faces
from faceattrs.inference.attribute_model import METADATA_FILE, MODEL_FILE, AttributeModel
from faceattrs.training.export import recalibrate, write_derived_model
from faceattrs.training.protocols import project_protocol

#: the first (unmirrored) pass's heads in the legacy exporter's graph, and the outputs they become
FIRST_PASS = {
    "/model/age/Gemm_output_0": "age_logits",
    "/model/ethnicity/Gemm_output_0": "ethnicity_logits",
    "/model/gender/Gemm_output_0": "gender_logits",
}


def single_pass_graph(path: Path) -> onnx.ModelProto:
    """The graph at ``path`` cut after the first pass's heads, outputs renamed as the model's."""
    extracted = Path(str(path) + ".single.tmp")
    try:
        onnx.utils.extract_model(str(path), str(extracted), ["images"], list(FIRST_PASS))
        model = onnx.load(str(extracted))
    finally:
        extracted.unlink(missing_ok=True)
    for node in model.graph.node:
        node.output[:] = [FIRST_PASS.get(o, o) for o in node.output]
    for output in model.graph.output:
        output.name = FIRST_PASS[output.name]
    onnx.checker.check_model(model)
    return model


def write_recalibrated(model_bytes: bytes, base_dir: Path, out: Path, parts: dict, version: str, note: dict) -> None:
    """``out/model.onnx`` and its metadata (the base's, with calibration refitted on validation)."""
    metadata = write_derived_model(model_bytes, base_dir, out, version)
    metadata["input"]["flip_tta_in_graph"] = False
    metadata["training"]["candidate"] = note
    (out / METADATA_FILE).write_text(json.dumps(metadata, indent=1))
    recalibrate(out, parts["val"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="an exported multitask model (flip averaged)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/utkface/UTKFace"))
    args = parser.parse_args()
    base = AttributeModel(args.model_dir)  # checks the sha256
    parts = project_protocol(load_faces(args.data, base.input_size, progress=False))
    graph = single_pass_graph(args.model_dir / MODEL_FILE)
    note = {"kind": "single pass (no flip averaging)", "base_model_sha256": base.metadata["sha256"]}
    write_recalibrated(graph.SerializeToString(), args.model_dir, args.out, parts, "single-pass", note)
    print(f"wrote {args.out}; then: faceattrs add-descriptor-heads --model-dir {args.out} --validation-only ...")


if __name__ == "__main__":
    main()
