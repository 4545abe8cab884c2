"""Which descriptor input, and which first-network pass, for the descriptor heads? Validation only.

The ninth and tenth models blend ethnicity and gender read-outs of dlib's face-recognition ResNet
into the sixth model (``faceattrs add-descriptor-heads``; the tenth with the int8 descriptor
network). This measures the choices behind them on the validation part, with the blend weight fitted
on one half and scored on the other (``face_embedding_check.blend_scores``), and the speed of each
piece in the same run:

* the descriptor network's input: 112 or 150 px chips resized from the 200 px crop, the model's own
  128 px input as it is, or that input upscaled to 150 px inside the graph (shipped), also as a
  static int8 copy (onnxruntime QDQ, activation ranges from 128 train faces);
* the first network with or without flip averaging (its temperatures refitted on validation).

Speeds are faces/s at batch 32 of each graph alone (median of alternating rounds); a pair's speed is
the arithmetic of its two medians, not a timing of the merged file.

    python benchmarks/descriptor_variants.py --net runs/dlib_net.xml --model-dir DIR_OF_MODEL_V6

``DIR_OF_MODEL_V6`` holds version 6's ``model.onnx`` and ``metadata.json`` (``git show
1aeac70:src/faceattrs/assets/model.onnx``). About 12 minutes here. Writes
``benchmarks/results/descriptor_variants.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from tqdm import tqdm

from face_embedding_check import blend_scores, mean_sd, standardised
from faceattrs.build.descriptor_heads import log_softmax, run_batches, to_onnx
from faceattrs.build.quantize import calibration_sample, quantize_int8
from faceattrs.calibration import age_mean_sigma, fit_temperature
from faceattrs.data.cache import load_faces
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.model_folder import MODEL_FILE, model_identity
from faceattrs.models.dlib_resnet import DlibResNet, FaceDescriptor, read_layers
from faceattrs.preprocessing import to_model_input
from faceattrs.training.protocols import project_protocol
from quantization import session
from results_io import save_results

DATA = Path("../shared/datasets/utkface/UTKFace")
# the sixth model's heads before flip averaging (its export names them so)
SINGLE_PASS = ["/model/age/Gemm_output_0", "/model/ethnicity/Gemm_output_0", "/model/gender/Gemm_output_0"]


class AsIs(torch.nn.Module):
    """uint8 NHWC chips straight into the network, whatever their size."""

    def __init__(self, net: DlibResNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.permute(0, 3, 1, 2).float())


def faces_at(names: list[str], size: int) -> np.ndarray:
    return np.stack([to_model_input(Image.open(DATA / n), size) for n in tqdm(names, desc=f"{size} px chips")])


def speed(sessions: dict[str, tuple[ort.InferenceSession, int]], rounds: int = 3, repeats: int = 15) -> dict:
    rng = np.random.default_rng(0)
    inputs = {n: rng.integers(0, 256, (32, size, size, 3), np.uint8) for n, (_, size) in sessions.items()}
    medians: dict[str, list[float]] = {n: [] for n in sessions}
    for _ in range(rounds):
        for name, (s, _) in sessions.items():
            s.run(None, {"images": inputs[name]})  # warm-up
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                s.run(None, {"images": inputs[name]})
                times.append(time.perf_counter() - start)
            medians[name].append(float(np.median(times)))
    return {n: float(np.median(m)) for n, m in medians.items()}  # seconds per batch of 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", type=Path, required=True, help="dlib network XML (tools/dlib_face_net)")
    parser.add_argument("--model-dir", type=Path, required=True, help="model version 6 (without descriptor heads)")
    parser.add_argument("--halvings", type=int, default=5)
    args = parser.parse_args()
    base = AttributeModel(args.model_dir)
    parts = project_protocol(load_faces(DATA, base.input_size, progress=False))
    train, val = parts["train"], parts["val"]
    names = list(train.names) + list(val.names)
    model_inputs = np.concatenate([train.images, val.images])

    # the first network, with and without flip averaging
    with tempfile.TemporaryDirectory() as tmp:
        single = Path(tmp) / "single.onnx"
        onnx.utils.extract_model(str(args.model_dir / MODEL_FILE), str(single), ["images"], SINGLE_PASS)
        first = {"flip-averaged": session(args.model_dir / MODEL_FILE, 2), "single pass": session(single, 2)}
    known = val.race >= 0
    firsts, first_rows = {}, {}
    for name, s in first.items():
        age, eth, gender = run_batches(s, val.images, desc=name)
        mean, _ = age_mean_sigma(age)
        t_eth, t_gender = fit_temperature(eth[known], val.race[known]), fit_temperature(gender, val.gender)
        firsts[name] = {"ethnicity": log_softmax(eth, t_eth), "gender": log_softmax(gender, t_gender)}
        first_rows[name] = {
            "age_mae": float(np.abs(mean - val.age).mean()),
            "cs5": float((np.abs(mean - val.age) <= 5).mean()),
        }

    net = DlibResNet(read_layers(args.net)).eval()

    def graph(module: torch.nn.Module, size: int) -> onnx.ModelProto:
        return to_onnx(module, (torch.zeros(2, size, size, 3, dtype=torch.uint8),), ["images"], ["descriptors"])

    shipped = "128 px input upscaled to 150 in the graph (shipped)"
    graphs = {
        "112 px chip from the 200 px crop": (graph(AsIs(net), 112), 112),
        "128 px model input as it is": (graph(AsIs(net), 128), 128),
        "150 px chip from the 200 px crop": (graph(AsIs(net), 150), 150),
        shipped: (graph(FaceDescriptor(net), 128), 128),
    }
    sessions = {name: (session(g.SerializeToString(), 2), size) for name, (g, size) in graphs.items()}
    int8 = quantize_int8(graphs[shipped][0], calibration_sample(train.images))
    sessions["the same, int8 static"] = (session(int8.SerializeToString(), 2), 128)

    rows, results = [], {"first_network": first_rows, "variants": {}}
    for name, (s, size) in sessions.items():
        images = model_inputs if size == base.input_size else faces_at(names, size)
        x_train, x_val = standardised(run_batches(s, images, desc=name)[0], len(train))
        for task, y_train, y_val in (("ethnicity", train.race, val.race), ("gender", train.gender, val.gender)):
            kt, kv = y_train >= 0, y_val >= 0
            head = LogisticRegression(C=0.1, max_iter=3000).fit(x_train[kt], y_train[kt])
            head_logp = head.predict_log_proba(x_val[kv])
            for first_name, logp in firsts.items():
                scores = blend_scores(logp[task][kv], head_logp, y_val[kv], args.halvings)
                head_acc = accuracy_score(y_val[kv], head_logp.argmax(1))
                results["variants"][f"{name} | {first_name} | {task}"] = scores | {"head_acc": head_acc}
    seconds = speed(sessions | {f"first network, {n}": (s, base.input_size) for n, s in first.items()})
    results["seconds_per_32"] = seconds
    for name in sessions:
        for first_name in firsts:
            e, g = (results["variants"][f"{name} | {first_name} | {t}"] for t in ("ethnicity", "gender"))
            pair = 32 / (seconds[name] + seconds[f"first network, {first_name}"])
            rows.append(
                f"| {name} | {first_name} | {e['head_acc'] * 100:.2f}% | {mean_sd(e['acc_blend'])}% | "
                f"{mean_sd(e['f1_blend'], 1, 3)} | {g['head_acc'] * 100:.2f}% | {mean_sd(g['acc_blend'])}% | "
                f"{32 / seconds[name]:.0f} | {pair:.0f} |"
            )
    first_line = "; ".join(
        f"{n}: age MAE {r['age_mae']:.3f}, CS@5 {r['cs5'] * 100:.1f}%, alone ethnicity "
        f"{mean_sd(results['variants'][f'{next(iter(sessions))} | {n} | ethnicity']['acc'])}%, gender "
        f"{mean_sd(results['variants'][f'{next(iter(sessions))} | {n} | gender']['acc'])}%, "
        f"{32 / seconds[f'first network, {n}']:.0f} faces/s"
        for n, r in first_rows.items()
    )
    lines = [
        "| descriptor input | first network | ethnicity: head alone | ethnicity: blended | macro-F1 blended | "
        "gender: head alone | gender: blended | descriptor faces/s (b32) | pair faces/s (b32) |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        f"\nValidation part ({len(val)} faces); heads fitted on {len(train)} train faces; {args.halvings} random "
        f"halvings, blend weight fitted on one half and scored on the other (mean ± standard deviation). "
        f"First network (model version {base.metadata['version']}), temperatures refitted on validation: "
        f"{first_line}. Pair speed: 32 / (sum of the two graphs' median seconds per batch of 32), timed in "
        "alternating rounds in this run; onnxruntime, 2 threads.",
    ]
    save_results("descriptor_variants", {"model": model_identity(args.model_dir)} | results, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
