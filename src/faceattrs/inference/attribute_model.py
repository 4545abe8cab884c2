"""The attribute model: a model folder's ONNX file run with onnxruntime, its outputs calibrated.

Needs only onnxruntime, numpy and Pillow; the folder is read (and its sha256 checked) by
:mod:`faceattrs.model_folder`.

>>> model = AttributeModel()  # the model shipped inside the package  # doctest: +SKIP
>>> out = model.predict(np.zeros((1, 200, 200, 3), np.uint8))  # doctest: +SKIP
>>> out.age.shape, out.ethnicity_proba.shape  # doctest: +SKIP
((1,), (1, 5))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceattrs.calibration import QuantileAgeInterval, age_median, softmax
from faceattrs.model_folder import (
    METADATA_FILE,
    MODEL_FILE,
    ModelIntegrityError,
    default_model_dir,
    read_model_folder,
)
from faceattrs.preprocessing import to_model_input


@dataclass
class AttributePredictions:
    """Calibrated predictions for N aligned faces (row-aligned arrays)."""

    age: np.ndarray  # (N,) the age shown, years (the median of the age distribution; see calibration.age_median)
    age_low: np.ndarray  # (N,) lower end of the conformal range
    age_high: np.ndarray
    gender_proba: np.ndarray  # (N, 2) male, female
    ethnicity_proba: np.ndarray  # (N, 5) white, black, asian, indian, others
    age_proba: np.ndarray  # (N, 117) the network's distribution over the ages 0..116

    def __len__(self) -> int:
        return len(self.age)


class AttributeModel:
    """Age, gender and ethnicity from aligned face crops (UTKFace geometry)."""

    def __init__(self, model_dir: Path | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        # onnxruntime's telemetry is process-wide and on by default (it reports through the OS's event tracing
        # where there is one, as on Windows); faceattrs sends nothing anywhere. The Analyzer makes this session
        # before the detector's, so both run with it off.
        ort.disable_telemetry_events()
        folder = Path(model_dir) if model_dir else default_model_dir()
        model_bytes, self.metadata = read_model_folder(folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types: a file it cannot run
            raise ModelIntegrityError(f"onnxruntime cannot load {folder / MODEL_FILE}: {exc}") from None
        widths = {o.name: o.shape[-1] for o in self.session.get_outputs()}
        for task, names in self.metadata["classes"].items():
            if f"{task}_logits" not in widths or widths[f"{task}_logits"] != len(names):
                raise ModelIntegrityError(
                    f"{folder / MODEL_FILE} does not output {len(names)} {task} scores, as "
                    f"{folder / METADATA_FILE} lists {names}"
                )
        self.input_size: int = self.metadata["input"]["model_size"]
        calibration = self.metadata["calibration"]
        self.t_ethnicity: float = calibration["ethnicity_temperature"]
        self.t_gender: float = calibration["gender_temperature"]
        self.interval = QuantileAgeInterval.from_metadata(calibration["age_interval"])

    @property
    def ethnicities(self) -> list[str]:
        """The ethnicity classes, in the order of the network's outputs (from the model's metadata)."""
        return self.metadata["classes"]["ethnicity"]

    @property
    def genders(self) -> list[str]:
        """The gender classes, in the order of the network's outputs (from the model's metadata)."""
        return self.metadata["classes"]["gender"]

    def prepare(self, crops: np.ndarray | list) -> np.ndarray:
        """Aligned crops (any square size) -> the network's uint8 input batch."""
        return np.stack([to_model_input(c, self.input_size) for c in crops])

    def raw(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The network's logits for an already prepared uint8 batch."""
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, {"images": batch}), strict=True))

    def predict(self, crops: np.ndarray | list, batch_size: int = 32) -> AttributePredictions:
        """Calibrated predictions for aligned face crops (uint8 RGB H x W x 3; an array or a list)."""
        parts = []
        for start in range(0, len(crops), batch_size):
            parts.append(self.raw(self.prepare(crops[start : start + batch_size])))
        if not parts:
            empty = np.zeros(0)
            return AttributePredictions(empty, empty, empty, np.zeros((0, 2)), np.zeros((0, 5)), np.zeros((0, 117)))
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return self.calibrate(out)

    def calibrate(self, out: dict[str, np.ndarray]) -> AttributePredictions:
        """The network's logits -> calibrated predictions (temperatures and the conformal age range)."""
        low, high = self.interval.bounds_for(out["age_logits"])
        return AttributePredictions(
            age=age_median(out["age_logits"]),
            age_low=low,
            age_high=high,
            gender_proba=softmax(out["gender_logits"], self.t_gender),
            ethnicity_proba=softmax(out["ethnicity_logits"], self.t_ethnicity),
            age_proba=softmax(out["age_logits"]),
        )
