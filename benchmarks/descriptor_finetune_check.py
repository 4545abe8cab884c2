"""Does fine-tuning the descriptor network on the labels pay? Frozen against fine-tuned, on validation.

The shipped model blends a first network's ethnicity and gender log-probabilities with those of
logistic-regression heads on dlib's face descriptors (``faceattrs add-descriptor-heads``). This
compares the two descriptor networks that step can build, as they ship (int8, 7-bit weights,
activation ranges from 128 train faces; ``--method`` picks how those ranges are set: minmax, as
shipped, or percentile), under the same first network:

1. descriptors of every train and validation face through each descriptor graph;
2. logistic-regression heads (C=0.1, standardised) fitted on the train descriptors;
3. each head alone, and blended with the first network (its calibrated log-probabilities), the
   blend weight fitted on one random half of validation and scored on the other, both ways, over
   ``--halvings`` halvings (the same halvings for both networks: ``face_embedding_check.blend_scores``).

The test part is never read. Usage::

    python benchmarks/descriptor_finetune_check.py --net runs/dlib_net.xml \\
        --finetuned runs/dlib_finetuned.safetensors --first-net runs/v14_net [--halvings 20] [--method percentile]

``--first-net`` is an exported model without descriptor heads (the shipped fifteenth model's first
network is ``runs/v14_net``: ``faceattrs quantize`` of the thirteenth's, see docs/results.md). Writes
``benchmarks/results/descriptor_finetune_check.json`` and ``.md`` (with ``--method percentile``:
``descriptor_finetune_check_percentile``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnxruntime as ort
from sklearn.metrics import accuracy_score

from face_embedding_check import blend_scores, mean_sd  # sibling script: python puts benchmarks/ on the path
from faceattrs.build.descriptor_finetune import load_finetuned_network
from faceattrs.build.descriptor_heads import descriptor_graph, fit_head, log_softmax, run_batches
from faceattrs.build.export import onnx_predictions
from faceattrs.build.quantize import METHODS, calibration_sample, quantize_int8
from faceattrs.data.cache import load_faces
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.models.dlib_resnet import DlibResNet, read_layers
from faceattrs.training.protocols import project_protocol
from results_io import save_results

DATA = Path("../shared/datasets/utkface/UTKFace")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", type=Path, required=True, help="dlib network XML (tools/dlib_face_net)")
    parser.add_argument("--finetuned", type=Path, required=True, help="faceattrs finetune-descriptors weights")
    parser.add_argument("--first-net", type=Path, required=True, help="exported model without descriptor heads")
    parser.add_argument("--halvings", type=int, default=20)
    parser.add_argument("--method", choices=sorted(METHODS), default="minmax", help="activation ranges (minmax ships)")
    args = parser.parse_args()

    first = AttributeModel(args.first_net)
    parts = project_protocol(load_faces(DATA, first.input_size, progress=False))
    train, val = parts["train"], parts["val"]
    logits, _, _ = onnx_predictions(first, val.images)
    first_logp = {
        "ethnicity": log_softmax(logits["ethnicity_logits"], first.t_ethnicity),
        "gender": log_softmax(logits["gender_logits"], first.t_gender),
    }
    calibration = calibration_sample(train.images)
    networks = {
        "frozen (as dlib trained it)": DlibResNet(read_layers(args.net)),
        "fine-tuned on the train labels": load_finetuned_network(args.net, args.finetuned, first.input_size)[0],
    }
    rows, results = [], {"first_network": str(args.first_net), "halvings": args.halvings, "networks": {}}
    for name, net in networks.items():
        graph = quantize_int8(descriptor_graph(net, first.input_size), calibration, args.method)
        session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
        (train_d,), (val_d,) = run_batches(session, train.images), run_batches(session, val.images)
        figures = {}
        for task, y_train, y_val in (("ethnicity", train.race, val.race), ("gender", train.gender, val.gender)):
            kt, kv = y_train >= 0, y_val >= 0
            head_logp = log_softmax(fit_head(train_d[kt], y_train[kt]).logits(val_d[kv]))
            scores = blend_scores(first_logp[task][kv], head_logp, y_val[kv], args.halvings)
            figures[task] = {
                "head_alone": float(accuracy_score(y_val[kv], head_logp.argmax(1))),
                "first_alone": float(accuracy_score(y_val[kv], first_logp[task][kv].argmax(1))),
                **scores,
            }
        results["networks"][name] = figures
        e, g = figures["ethnicity"], figures["gender"]
        rows.append(
            f"| {name} | {100 * e['head_alone']:.2f}% | {mean_sd(e['acc_blend'])} | {mean_sd(e['f1_blend'], 1, 3)} "
            f"| {100 * g['head_alone']:.2f}% | {mean_sd(g['acc_blend'])} |"
        )
    e, g = figures["ethnicity"], figures["gender"]
    markdown = "\n".join(
        [
            f"| descriptor network (int8, {args.method} activation ranges) | ethnicity: head alone "
            "| ethnicity: blended | macro-F1 blended "
            "| gender: head alone | gender: blended |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            f"{len(val)} validation faces; heads fitted on {len(train)} train faces; first network "
            f"`{args.first_net.name}` alone: ethnicity {100 * e['first_alone']:.2f}%, "
            f"gender {100 * g['first_alone']:.2f}%. "
            f"Blends: {args.halvings} random halvings of validation (the same for both networks), the weight fitted on "
            "one half and scored on the other (mean ± standard deviation, in %).",
        ]
    )
    print(markdown)
    results["method"] = args.method
    suffix = "" if args.method == "minmax" else f"_{args.method}"
    save_results(f"descriptor_finetune_check{suffix}", results, markdown)


if __name__ == "__main__":
    main()
