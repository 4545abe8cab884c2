"""The shipped attribute model: one ONNX file plus its metadata, run with onnxruntime.

Needs only onnxruntime, numpy and Pillow. The model file's sha256 is checked
against the metadata before the file is handed to onnxruntime, so a corrupted
or swapped file fails loudly instead of predicting nonsense.

>>> model = AttributeModel()  # the model shipped inside the package  # doctest: +SKIP
>>> out = model.predict(np.zeros((1, 200, 200, 3), np.uint8))  # doctest: +SKIP
>>> out.age.shape, out.ethnicity_proba.shape  # doctest: +SKIP
((1,), (1, 5))
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from faceattrs.calibration import AGE_POINTS, age_interval, age_point_rule, softmax
from faceattrs.preprocessing import to_model_input

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"


class ModelIntegrityError(RuntimeError):
    """The model file does not match its metadata (corrupted, truncated or swapped)."""


def default_model_dir() -> Path:
    """Folder of the model: ``$FACEATTRS_MODEL_DIR`` when set, else the one shipped inside the package."""
    if override := os.environ.get("FACEATTRS_MODEL_DIR"):
        return Path(override)
    return Path(str(resources.files("faceattrs") / "assets"))


def model_identity(model_dir: Path | None = None) -> dict[str, str]:
    """Name, version and sha256 of a model folder's ONNX file, from its metadata (the file is not read).

    Benchmarks save it beside their figures, so a result can be traced to the model it measured.

    >>> sorted(model_identity())
    ['name', 'sha256', 'version']
    """
    meta = json.loads((Path(model_dir or default_model_dir()) / METADATA_FILE).read_text())
    return {k: meta[k] for k in ("name", "version", "sha256")}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class AttributePredictions:
    """Calibrated predictions for N aligned faces (row-aligned arrays)."""

    age: np.ndarray  # (N,) the age shown, years (the median of the age distribution; see calibration.AGE_POINTS)
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

        model_dir = Path(model_dir) if model_dir else default_model_dir()
        meta_file, model_file = model_dir / METADATA_FILE, model_dir / MODEL_FILE
        if not meta_file.exists() or not model_file.exists():
            raise FileNotFoundError(f"no model in {model_dir} (need {MODEL_FILE} and {METADATA_FILE})")
        self.metadata: dict[str, Any] = json.loads(meta_file.read_text())
        model_bytes = model_file.read_bytes()
        digest = hashlib.sha256(model_bytes).hexdigest()
        if digest != self.metadata["sha256"]:
            raise ModelIntegrityError(
                f"{model_file} has sha256 {digest[:12]}..., metadata says {self.metadata['sha256'][:12]}...: "
                "the model file is corrupted or does not belong to this metadata"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        self.input_size: int = self.metadata["input"]["model_size"]
        calibration = self.metadata["calibration"]
        self.t_ethnicity: float = calibration["ethnicity_temperature"]
        self.t_gender: float = calibration["gender_temperature"]
        self.interval = age_interval(calibration["age_interval"])
        self.age_point: str = age_point_rule(calibration)

    @property
    def ethnicities(self) -> list[str]:
        return self.metadata["classes"]["ethnicity"]

    @property
    def genders(self) -> list[str]:
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
        low, high = self.interval.bounds_for(out["age_logits"])
        return AttributePredictions(
            age=AGE_POINTS[self.age_point](out["age_logits"]),
            age_low=low,
            age_high=high,
            gender_proba=softmax(out["gender_logits"], self.t_gender),
            ethnicity_proba=softmax(out["ethnicity_logits"], self.t_ethnicity),
            age_proba=softmax(out["age_logits"]),
        )
