"""dlib's face-recognition ResNet as a PyTorch module, rebuilt from the XML its weights dump to.

The network is ``dlib_face_recognition_resnet_model_v1`` (``face_recognition_models`` wheel,
CC0): trained from scratch by Davis King on about 3 million faces of 7,485 identities (FaceScrub,
VGG Face, web images) with an identity metric loss, so it never saw age, gender or ethnicity labels.
Its 128-d descriptors carry the ethnicity and gender cues that ImageNet features lack
(measured once, docs/history.md). dlib stores it in its own binary format;
``tools/dlib_face_net/dump_dlib_net`` (C++ against dlib's source) writes it as XML with the weights,
which :func:`read_layers` parses. Build-time only: the shipped model runs it inside its ONNX file.

Checked against dlib's own ``compute_face_descriptor`` on 16 train chips: largest difference 4e-7
(``python tools/dlib_face_net/read_dlib_net.py net.xml``).

>>> layers = read_layers("net.xml")  # doctest: +SKIP
>>> DlibResNet(layers)(torch.zeros(1, 3, 150, 150)).shape  # doctest: +SKIP
torch.Size([1, 128])
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CHIP_SIZE = 150  # the network was trained on 150 px chips; descriptors of other scales are much weaker

Layer = tuple[str, dict[str, str], "np.ndarray | None"]


def read_layers(xml_path: str | Path) -> list[Layer]:
    """(kind, attributes, values) of every layer of dump_dlib_net's XML, input first."""
    layers = []
    for layer in ET.parse(str(xml_path)).getroot():
        children = list(layer)
        if not children:  # tag and skip layers carry only an id
            layers.append((layer.attrib["type"] + layer.attrib["id"], dict(layer.attrib), None))
            continue
        (node,) = children
        text = (node.text or "").strip()
        layers.append((node.tag, dict(node.attrib), np.array(text.split(), np.float32) if text else None))
    return layers[::-1]


def fold_affine(layers: list[Layer]) -> list[Layer]:
    """The layers with every ``affine_con`` that follows a ``con`` folded into that convolution's weights.

    dlib stores batch norm as a per-channel scale and shift after each convolution. Folded, each
    convolution is one node for onnxruntime to fuse and quantise as a unit, and the network computes
    the same function (float speed unchanged: 349 against 350 faces/s at batch 32 in one run).

    >>> con = ("con", {"num_filters": "1", "nr": "1", "nc": "1"}, np.array([2.0, 1.0], np.float32))
    >>> affine = ("affine_con", {}, np.array([3.0, 0.5], np.float32))
    >>> [(kind, values.tolist()) for kind, _, values in fold_affine([con, affine])]
    [('con', [6.0, 3.5])]
    """
    folded: list[Layer] = []
    for kind, attrs, values in layers:
        if kind == "affine_con" and folded and folded[-1][0] == "con":
            _, con_attrs, con_values = folded[-1]
            n = int(con_attrs["num_filters"])
            scale, shift = values[:n], values[n:]
            weights = con_values[:-n].reshape(n, -1) * scale[:, None]
            folded[-1] = ("con", con_attrs, np.concatenate([weights.ravel(), con_values[-n:] * scale + shift]))
        else:
            folded.append((kind, attrs, values))
    return folded


def _padded_to(x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """x zero-padded at the end of each (C, H, W) axis where ``other`` is larger; x itself if none is."""
    c, h, w = (max(0, int(j) - int(i)) for i, j in zip(x.shape[1:], other.shape[1:], strict=True))
    # the shapes are fixed by the input size, so the trace may read them as constants; F.pad rather
    # than writing into a zero tensor: one ONNX Pad, not slow ScatterND chains
    return F.pad(x, (0, w, 0, h, 0, c)) if c or h or w else x


class DlibResNet(nn.Module):
    """float RGB chips (N, 3, H, W) in 0..255 -> 128-d descriptors, with dlib's semantics.

    The weights are buffers, so an ONNX export stores them as initializers. Batch-norm layers are
    folded into the convolutions before them (:func:`fold_affine`).
    """

    def __init__(self, layers: list[Layer]) -> None:
        super().__init__()
        layers = fold_affine(layers)
        self.layers = [(kind, attrs) for kind, attrs, _ in layers]

        def store(name: str, values: np.ndarray) -> None:
            self.register_buffer(name, torch.from_numpy(values.copy()))

        # Shaped here, not in forward: sliced from a flat buffer inside the graph, the weights were no
        # initializers, so onnxruntime could neither fold them nor quantise the convolutions.
        for i, (kind, attrs, values) in enumerate(layers):
            if kind == "input_rgb_image_sized":
                self.register_buffer(f"p{i}", torch.tensor([float(attrs[c]) for c in "rgb"]).view(1, 3, 1, 1))
            elif kind == "con":
                n, kh, kw = int(attrs["num_filters"]), int(attrs["nr"]), int(attrs["nc"])
                store(f"p{i}", values[:-n].reshape(n, -1, kh, kw))
                store(f"b{i}", values[-n:])
            elif kind == "affine_con":  # only where no convolution precedes it
                c = len(values) // 2
                store(f"p{i}", values[:c].reshape(1, c, 1, 1))
                store(f"b{i}", values[c:].reshape(1, c, 1, 1))
            elif kind == "fc_no_bias":
                store(f"p{i}", values.reshape(-1, int(attrs["num_outputs"])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tags: dict[str, torch.Tensor] = {}
        for i, (kind, a) in enumerate(self.layers):
            v, b = getattr(self, f"p{i}", None), getattr(self, f"b{i}", None)
            if kind == "input_rgb_image_sized":  # dlib subtracts the channel means and divides by 256
                x = (x - v) / 256
            elif kind == "con":
                stride, pad = (int(a["stride_y"]), int(a["stride_x"])), (int(a["padding_y"]), int(a["padding_x"]))
                x = F.conv2d(x, v, b, stride=stride, padding=pad)
            elif kind == "affine_con":  # batch norm folded by dlib: per-channel scale, then shift
                x = x * v + b
            elif kind == "relu":
                x = F.relu(x)
            elif kind == "max_pool":
                x = F.max_pool2d(x, int(a["nr"]), int(a["stride_y"]))
            elif kind == "avg_pool":  # size 0 means the whole plane
                pooled = a["nr"] == "0"
                x = x.mean((2, 3), keepdim=True) if pooled else F.avg_pool2d(x, int(a["nr"]), int(a["stride_y"]))
            elif kind.startswith("tag"):
                tags[kind[3:]] = x
            elif kind.startswith("skip"):
                x = tags[kind[4:]]
            elif kind == "add_prev":  # dlib adds tensors of different shapes as if zero-padded to the larger
                x = _padded_to(x, tags[a["tag"]]) + _padded_to(tags[a["tag"]], x)
            elif kind == "fc_no_bias":
                x = x.flatten(1) @ v
            elif kind != "loss_metric":
                raise ValueError(f"unknown dlib layer {kind}")
        return x


class FaceDescriptor(nn.Module):
    """uint8 NHWC RGB faces at any size -> descriptors of the faces scaled to the network's 150 px.

    Scaling matters more than detail: the shipped model's 128 px input upscaled to 150 px gives
    descriptors as useful as the 200 px crop downscaled to 150 px, while 112 or 128 px chips
    lose most of the gain (validation, session 11).
    """

    def __init__(self, net: DlibResNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float()
        if x.shape[-1] != CHIP_SIZE:
            x = F.interpolate(x, size=(CHIP_SIZE, CHIP_SIZE), mode="bilinear", align_corners=False)
        return self.net(x)
