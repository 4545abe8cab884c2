"""Static int8 quantisation of an ONNX graph with one ``images`` input (onnxruntime, QDQ format).

Weights get one int8 scale per output channel; activation ranges are calibrated on the faces
given, which must come from the *train* part, never from the faces a model is judged on.

>>> int8 = quantize_int8(fp32_model, train_faces[:128])  # doctest: +SKIP
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


def calibration_sample(images: np.ndarray, n: int = CALIBRATION_FACES) -> np.ndarray:
    """``n`` faces of ``images`` drawn at random (seed 0, in their original order); all of them if fewer.

    >>> calibration_sample(np.arange(10), 3).tolist()
    [5, 6, 9]
    """
    pick = np.random.default_rng(0).choice(len(images), min(len(images), n), replace=False)
    return images[np.sort(pick)]


class CalibrationBatches(CalibrationDataReader):
    """Feeds prepared uint8 batches to the calibrator."""

    def __init__(self, images: np.ndarray, batch: int = 32) -> None:
        self.chunks = iter([np.ascontiguousarray(images[i : i + batch]) for i in range(0, len(images), batch)])

    def get_next(self):
        chunk = next(self.chunks, None)
        return None if chunk is None else {"images": chunk}


def quantize_int8(model: onnx.ModelProto | Path, calibration: np.ndarray, method: str = "minmax") -> onnx.ModelProto:
    """An int8 copy of ``model``: per-channel int8 weights, uint8 activations with ranges from ``calibration``.

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
            calibrate_method=METHODS[method],
        )
        return onnx.load(str(int8))
