"""Self-distillation: a model's single pass trained to give its own flip-averaged outputs.

Flip averaging runs the first network twice; a single pass loses about 0.045 years of validation
MAE. This candidate tries to keep the single pass's cost and win the average back: the single-pass
graph (``single_pass.py``) becomes a trainable PyTorch module (``OnnxModule``: each ONNX node
evaluated with the torch op of the same meaning, the graph's weights as parameters, so no
PyTorch checkpoint of the model is needed), which is trained on the train faces, randomly
mirrored, to minimise the KL divergence from the flip-averaged model's softmax outputs (no
labels). The trained weights go back into the same graph, which is recalibrated on validation.
Measured in session 14 (2 epochs, one-cycle lr 1e-4, 14 minutes here): it bought almost nothing.

With ``--degrade P`` each training face is, with probability P, degraded (``degrade.py``: noise,
JPEG, blur, greyscale, light, contrast, tight framing) before the student sees it, while the target
stays the teacher's output on the clean face: the student learns to read a poor photo as the
teacher reads a good one (session 15's robustness candidate).

Usage (from the repository root)::

    python tools/candidates/self_distill.py --model-dir runs/v6 --out runs/v6_self_distilled \\
        [--epochs 2] [--degrade 0.5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from degrade import degrade  # sibling scripts
from onnx import numpy_helper
from onnxruntime.quantization import quant_pre_process
from single_pass import single_pass_graph, write_recalibrated
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from faceattrs.calibration import age_median
from faceattrs.data.cache import load_faces
from faceattrs.inference.attribute_model import MODEL_FILE, AttributeModel
from faceattrs.training.export import onnx_predictions
from faceattrs.training.protocols import project_protocol

#: where float [0, 1] NCHW images enter the legacy exporter's graph (after the uint8 NHWC -> float steps)
FLOAT_INPUT = "/Div_output_0"


class OnnxModule(nn.Module):
    """A constant-folded inference graph (Conv, Clip, Add, Gemm, pooling...) as a trainable module."""

    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__()
        self.model = model
        graph = model.graph
        tensors = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        tensors |= {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node if n.op_type == "Constant"}
        weights = sorted({n.input[k] for n in graph.node if n.op_type in ("Conv", "Gemm") for k in (1, 2)})
        self.key = {name: f"w{i}" for i, name in enumerate(weights)}
        self.weights = nn.ParameterDict(
            {self.key[n]: nn.Parameter(torch.from_numpy(tensors[n].copy())) for n in weights}
        )
        self.constants = {name: torch.from_numpy(np.array(v)) for name, v in tensors.items() if name not in self.key}
        nodes = [n for n in graph.node if n.op_type != "Constant"]
        start = next(i for i, n in enumerate(nodes) if FLOAT_INPUT in n.output)
        self.nodes = nodes[start + 1 :]
        self.outputs = [o.name for o in graph.output]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        values = {FLOAT_INPUT: x}
        for node in self.nodes:
            args = [values[n] if n in values else self._tensor(n) for n in node.input]
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            values[node.output[0]] = self._run(node.op_type, args, attrs)
        return [values[o] for o in self.outputs]

    def _tensor(self, name: str) -> torch.Tensor:
        return self.weights[self.key[name]] if name in self.key else self.constants[name]

    @staticmethod
    def _run(op: str, a: list, attrs: dict) -> torch.Tensor:
        if op == "Conv":
            top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
            x, padding = a[0], (top, left)
            if (top, left) != (bottom, right):  # onnx allows uneven padding, conv2d does not
                x, padding = F.pad(x, (left, right, top, bottom)), 0
            bias = a[2] if len(a) > 2 else None
            return F.conv2d(x, a[1], bias, attrs.get("strides", 1), padding, 1, attrs.get("group", 1))
        if op == "Gemm":
            return a[0] @ (a[1].T if attrs.get("transB", 0) else a[1]) + a[2]
        if op == "Clip":
            return torch.clamp(a[0], float(a[1]), float(a[2]))
        if op == "GlobalAveragePool":
            return a[0].mean((2, 3), keepdim=True)
        if op == "Flatten":
            return a[0].flatten(1)
        binary = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}
        if op in binary:
            return binary[op](a[0], a[1])
        raise NotImplementedError(f"ONNX op {op}")

    def to_onnx(self) -> onnx.ModelProto:
        """The graph with the module's current weights."""
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        trained = {name: self.weights[key].detach().numpy() for name, key in self.key.items()}
        for init in model.graph.initializer:
            if init.name in trained:
                init.CopyFrom(numpy_helper.from_array(trained[init.name].astype(np.float32), init.name))
        return model


def as_float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).contiguous(memory_format=torch.channels_last)


def scores(module: OnnxModule, faces) -> str:
    module.eval()
    with torch.no_grad():
        outs = [[o.numpy() for o in module(as_float(faces.images[i : i + 128]))] for i in range(0, len(faces), 128)]
    module.train()
    age, eth, gender = (np.concatenate([o[k] for o in outs]) for k in range(3))
    error = np.abs(age_median(age) - faces.age)
    return (
        f"MAE {error.mean():.4f} CS@5 {100 * (error <= 5).mean():.2f} ethnicity "
        f"{100 * (eth.argmax(1) == faces.race).mean():.2f} gender {100 * (gender.argmax(1) == faces.gender).mean():.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="an exported multitask model (flip averaged)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4, help="peak of the one-cycle schedule")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--degrade", type=float, default=0.0, help="share of training faces degraded (degrade.py)")
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/utkface/UTKFace"))
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)

    teacher = AttributeModel(args.model_dir)  # checks the sha256
    parts = project_protocol(load_faces(args.data, teacher.input_size, progress=False))
    train, val = parts["train"], parts["val"]
    logits, _, _ = onnx_predictions(teacher, train.images)
    targets = [torch.from_numpy(logits[k]).softmax(1) for k in ("age_logits", "ethnicity_logits", "gender_logits")]

    with tempfile.TemporaryDirectory() as tmp:  # constant folding makes the padding plain Conv attributes
        onnx.save(single_pass_graph(args.model_dir / MODEL_FILE), Path(tmp) / "single.onnx")
        quant_pre_process(str(Path(tmp) / "single.onnx"), str(Path(tmp) / "folded.onnx"))
        student = OnnxModule(onnx.load(str(Path(tmp) / "folded.onnx")))
    print("start:", scores(student, val), flush=True)

    steps_per_epoch = len(train) // args.batch_size
    optimizer = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.05
    )
    started, rng = time.time(), np.random.default_rng(0)
    for epoch in range(args.epochs):
        order = torch.randperm(len(train)).numpy()
        for step in tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}", leave=False):
            rows = np.sort(order[step * args.batch_size : (step + 1) * args.batch_size])
            images = train.images[rows]
            if args.degrade > 0:
                images = np.stack([degrade(im, rng) if rng.random() < args.degrade else im for im in images])
            x = as_float(images)
            mirror = torch.rand(len(rows)) < 0.5  # the teacher's output is the same for both: it averages them
            x = torch.where(mirror[:, None, None, None], x.flip(3), x)
            loss = sum(
                F.kl_div(F.log_softmax(out, 1), target[rows], reduction="batchmean")
                for out, target in zip(student(x), targets, strict=True)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        rate = (epoch + 1) * steps_per_epoch * args.batch_size / (time.time() - started)
        print(f"epoch {epoch + 1} ({rate:.0f} faces/s):", scores(student, val), flush=True)

    kind = "single pass, self-distilled from the flip-averaged model on the train faces"
    if args.degrade > 0:
        kind += f" ({args.degrade:.0%} of them degraded for the student: tools/candidates/degrade.py)"
    note = {
        "kind": f"{kind} (tools/candidates)",
        "epochs": args.epochs,
        "lr": args.lr,
        "base_model_sha256": teacher.metadata["sha256"],
    }
    write_recalibrated(student.to_onnx().SerializeToString(), args.model_dir, args.out, parts, "self-distilled", note)
    print(f"wrote {args.out}; then: faceattrs add-descriptor-heads --model-dir {args.out} --validation-only ...")


if __name__ == "__main__":
    main()
