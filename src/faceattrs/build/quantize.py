"""Static int8 quantisation of an ONNX graph with one ``images`` input (onnxruntime, QDQ format).

Weights get one int8 scale per output channel; activation ranges are calibrated on the faces
given, which must come from the *train* part, never from the faces a model is judged on.
``quantize_model_dir`` turns an exported model folder into an int8 one (``faceattrs quantize``),
its temperatures and age range refitted on validation through the int8 file.

>>> int8 = quantize_int8(fp32_model, train_faces[:128])  # doctest: +SKIP
>>> quantize_model_dir(Path("runs/v6"), Path("runs/v6_int8"), parts, version="6-int8")  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

METHODS = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
CALIBRATION_FACES = 128
#: the method ``faceattrs quantize`` uses: of minmax, percentile (99.999%), entropy and moving-average minmax it
#: moved the shipped first network's outputs least on 512 train faces (float against int8; docs/history.md)
DEFAULT_METHOD = "percentile"
#: the largest int8 weight magnitude written (onnxruntime's ``reduce_range``: 7 bits). Without VNNI, x86
#: CPUs multiply uint8 by int8 with instructions that add pairs of products into int16 and saturate
#: there: 255 * 64 * 2 stays below 32767, 255 * 127 * 2 does not, so full-range weights change the
#: outputs on those CPUs only
MAX_INT8_WEIGHT = 64


def calibration_sample(images: np.ndarray, n: int = CALIBRATION_FACES) -> np.ndarray:
    """``n`` faces of ``images`` drawn at random (seed 0, in their original order); all of them if fewer.

    >>> calibration_sample(np.arange(10), 3).tolist()
    [5, 6, 9]
    """
    pick = np.random.default_rng(0).choice(len(images), min(len(images), n), replace=False)
    return images[np.sort(pick)]


class CalibrationBatches(CalibrationDataReader):
    """Feeds uint8 batches of one size to the calibrator: the largest size up to ``batch`` dividing the faces.

    onnxruntime's histogram calibrators (percentile, entropy) stack every batch's activations into one
    array and fail on a shorter last batch (microsoft/onnxruntime#18792). Equal batches give the same
    ranges as any other split, since all activations are pooled before the ranges are set.

    >>> [len(b["images"]) for b in iter(CalibrationBatches(np.zeros((40, 2, 2, 3), np.uint8)).get_next, None)]
    [20, 20]
    """

    def __init__(self, images: np.ndarray, batch: int = 32) -> None:
        batch = max((size for size in range(1, min(batch, len(images)) + 1) if len(images) % size == 0), default=1)
        self.chunks = iter([np.ascontiguousarray(images[i : i + batch]) for i in range(0, len(images), batch)])

    def get_next(self):
        chunk = next(self.chunks, None)
        return None if chunk is None else {"images": chunk}


def quantize_int8(model: onnx.ModelProto | Path, calibration: np.ndarray, method: str = "minmax") -> onnx.ModelProto:
    """An int8 copy of ``model``: per-channel int8 weights, uint8 activations with ranges from ``calibration``.

    The weights use 7 of the 8 bits so that the file gives the same outputs on every x86 CPU
    (onnxruntime's kernels for CPUs without VNNI saturate on full-range int8 weights).

    The calibrator holds every activation of every calibration face in memory (about 45 MB a face
    for the multitask model), so keep ``calibration`` to a few hundred faces.
    """
    with tempfile.TemporaryDirectory() as tmp:
        fp32, pre, int8 = (Path(tmp) / name for name in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        if isinstance(model, onnx.ModelProto):
            onnx.save(model, fp32)
        else:
            fp32 = Path(model)
        quant_pre_process(str(fp32), str(pre))
        quantize_static(
            str(pre),
            str(int8),
            CalibrationBatches(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            reduce_range=True,  # weights within +-MAX_INT8_WEIGHT
            calibrate_method=METHODS[method],
        )
        return onnx.load(str(int8))


def quantize_model_dir(
    model_dir: Path,
    out_dir: Path,
    parts: dict,
    *,
    version: str,
    method: str = DEFAULT_METHOD,
    n_faces: int = CALIBRATION_FACES,
) -> dict:
    """Write ``out_dir/model.onnx`` and ``metadata.json``: an int8 copy of ``model_dir``'s model.

    Activation ranges come from ``n_faces`` random faces of ``parts["train"]``; the temperatures and
    the age range are refitted on ``parts["val"]`` through the int8 file (quantisation moves the
    logits a little). Returns the new calibration. The test part is not touched.
    """
    from faceattrs.build.export import recalibrate  # torch comes with it
    from faceattrs.inference.attribute_model import AttributeModel
    from faceattrs.model_folder import MODEL_FILE, derived_metadata, write_model_folder

    base = AttributeModel(model_dir)  # checks the sha256
    int8 = quantize_int8(Path(model_dir) / MODEL_FILE, calibration_sample(parts["train"].images, n_faces), method)
    metadata = derived_metadata(base.metadata, version)
    metadata["training"]["quantization"] = {
        "weights": "int8 in 7 bits (-64..64: no int16 saturation on CPUs without VNNI), one scale per output channel",
        "activations": f"uint8, ranges from {n_faces} random train faces ({method} calibration)",
        "format": "onnxruntime static quantisation, QDQ",
        "base_model_sha256": base.metadata["sha256"],
    }
    write_model_folder(out_dir, int8.SerializeToString(), metadata)
    return recalibrate(out_dir, parts["val"])
