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

from faceattrs.data.cache import load_faces
from faceattrs.inference.attribute_model import METADATA_FILE, MODEL_FILE, AttributeModel
from faceattrs.training.export import recalibrate, write_derived_model
from faceattrs.training.onnx_graphs import single_pass_graph
from faceattrs.training.protocols import project_protocol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="an exported multitask model (flip averaged)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/utkface/UTKFace"))
    args = parser.parse_args()
    base = AttributeModel(args.model_dir)  # checks the sha256
    parts = project_protocol(load_faces(args.data, base.input_size, progress=False))
    graph = single_pass_graph(args.model_dir / MODEL_FILE)
    metadata = write_derived_model(graph.SerializeToString(), args.model_dir, args.out, "single-pass")
    metadata["input"]["flip_tta_in_graph"] = False
    metadata["training"]["candidate"] = {
        "kind": "single pass (no flip averaging)",
        "base_model_sha256": base.metadata["sha256"],
    }
    (args.out / METADATA_FILE).write_text(json.dumps(metadata, indent=1))
    recalibrate(args.out, parts["val"])
    print(f"wrote {args.out}; then: faceattrs add-descriptor-heads --model-dir {args.out} --validation-only ...")


if __name__ == "__main__":
    main()
