"""Surgery on exported multitask graphs: one pass cut out of the flip average, and put back.

The exporter's graph runs the network on the faces and on their mirror images and averages the
logits (flip test-time augmentation). ``single_pass_graph`` keeps the first pass only (the
trainable form ``self_distill`` fine-tunes); ``flip_averaged_graph`` wraps a
single-pass graph back into the averaged form; ``folded`` makes constants plain attributes.

>>> single = single_pass_graph(Path("runs/v6/model.onnx"))  # doctest: +SKIP
>>> flip_averaged_graph(single)  # the same outputs as runs/v6/model.onnx  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

#: the first (unmirrored) pass's heads in the exporter's graph, and the outputs they become
FIRST_PASS = {
    "/model/age/Gemm_output_0": "age_logits",
    "/model/ethnicity/Gemm_output_0": "ethnicity_logits",
    "/model/gender/Gemm_output_0": "gender_logits",
}


def single_pass_graph(path: Path) -> onnx.ModelProto:
    """The exported graph at ``path`` cut after the first pass's heads, outputs renamed as the model's."""
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


def flip_averaged_graph(single: onnx.ModelProto) -> onnx.ModelProto:
    """``single`` (uint8 NHWC ``images`` in, logits out) run on the faces and their mirrors, logits averaged.

    The faces and their mirror images (``Slice`` with step -1 along the width) go through the
    network as one doubled batch; each output is the mean of the two halves.
    """
    model = onnx.ModelProto()
    model.CopyFrom(single)
    graph = model.graph
    (images,) = (i.name for i in graph.input)
    both = "flip/both"
    for node in graph.node:
        node.input[:] = [both if name == images else name for name in node.input]
    head = [
        helper.make_node("Slice", [images, "flip/start", "flip/end", "flip/axis", "flip/step"], ["flip/mirrored"]),
        helper.make_node("Concat", [images, "flip/mirrored"], [both], axis=0),
    ]
    constants = {"flip/start": [-1], "flip/end": [np.iinfo(np.int64).min], "flip/axis": [2], "flip/step": [-1]}
    tail = []
    for output in graph.output:
        classes = output.type.tensor_type.shape.dim[1].dim_value
        doubled, halves = f"{output.name}/both", f"flip/{output.name}/halves"
        for node in graph.node:
            node.output[:] = [doubled if name == output.name else name for name in node.output]
        constants[f"flip/{output.name}/shape"] = [2, -1, classes]
        tail += [
            helper.make_node("Reshape", [doubled, f"flip/{output.name}/shape"], [halves]),
            helper.make_node("ReduceMean", [halves], [output.name], axes=[0], keepdims=0),
        ]
    graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), k) for k, v in constants.items())
    nodes = head + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model


def folded(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with constants folded (onnxruntime's pre-processing): padding becomes plain Conv attributes."""
    from onnxruntime.quantization import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(model, Path(tmp) / "in.onnx")
        quant_pre_process(str(Path(tmp) / "in.onnx"), str(Path(tmp) / "folded.onnx"))
        return onnx.load(str(Path(tmp) / "folded.onnx"))
