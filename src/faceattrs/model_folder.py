"""The model folder: the one place that knows its files, reads them safely and writes them.

A model folder holds ``model.onnx`` and ``metadata.json`` (classes, input geometry, calibration,
training data, measured metrics and the ONNX file's sha256). The build writes folders only through
:func:`write_model_folder`, and every reader goes through :func:`read_model_folder`, which checks the
sha256 before the bytes reach onnxruntime, so a corrupted or swapped file fails loudly instead of
predicting nonsense. The model shipped inside the package is one such folder (``faceattrs/assets``).

>>> onnx_bytes, metadata = read_model_folder(default_model_dir())
>>> metadata["sha256"] == sha256_of_bytes(onnx_bytes)
True
>>> sorted(model_identity())
['name', 'sha256', 'version']
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"


class ModelIntegrityError(RuntimeError):
    """The model file does not match its metadata (corrupted, truncated or swapped)."""


def default_model_dir() -> Path:
    """Folder of the model: ``$FACEATTRS_MODEL_DIR`` when set, else the one shipped inside the package."""
    if override := os.environ.get("FACEATTRS_MODEL_DIR"):
        return Path(override)
    return Path(str(resources.files("faceattrs") / "assets"))


def sha256_of_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes, in hex."""
    return sha256_of_bytes(Path(path).read_bytes())


#: what a model folder's metadata must say for the model to be run (``section.key``)
REQUIRED_METADATA = (
    "sha256",
    "version",
    "classes.ethnicity",
    "classes.gender",
    "input.model_size",
    "calibration.ethnicity_temperature",
    "calibration.gender_temperature",
    "calibration.age_interval",
)


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """A model folder's ``metadata.json`` (the ONNX file is neither read nor checked).

    Raises :class:`ModelIntegrityError`, naming the file, when it is not JSON or lacks a key the
    model needs (:data:`REQUIRED_METADATA`).
    """
    path = Path(model_dir) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no model in {model_dir} (need {MODEL_FILE} and {METADATA_FILE})")
    try:
        metadata = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelIntegrityError(f"{path} is not valid JSON ({exc})") from None
    for key in REQUIRED_METADATA:
        section = metadata
        for part in key.split("."):
            if not isinstance(section, dict) or part not in section:
                raise ModelIntegrityError(f"{path} lacks {key!r}: it is not a faceattrs model folder's metadata")
            section = section[part]
    return metadata


def model_identity(model_dir: Path | None = None) -> dict[str, str]:
    """Name, version and sha256 of a model folder, from its metadata: benchmarks save it beside their figures."""
    meta = read_metadata(Path(model_dir or default_model_dir()))
    return {k: meta[k] for k in ("name", "version", "sha256")}


def read_model_folder(model_dir: Path) -> tuple[bytes, dict[str, Any]]:
    """The ONNX bytes and the metadata of a model folder, after checking the bytes against the metadata's sha256."""
    model_dir = Path(model_dir)
    metadata = read_metadata(model_dir)
    model_file = model_dir / MODEL_FILE
    if not model_file.is_file():
        raise FileNotFoundError(f"no model in {model_dir} (need {MODEL_FILE} and {METADATA_FILE})")
    model_bytes = model_file.read_bytes()
    digest = sha256_of_bytes(model_bytes)
    if digest != metadata.get("sha256"):
        raise ModelIntegrityError(
            f"{model_file} has sha256 {digest[:12]}..., metadata says {str(metadata.get('sha256'))[:12]}...: "
            "the model file is corrupted or does not belong to this metadata"
        )
    return model_bytes, metadata


def write_metadata(model_dir: Path, metadata: dict[str, Any]) -> None:
    """Rewrite a folder's ``metadata.json`` (the ONNX file stays; its sha256 in ``metadata`` must still match it)."""
    (Path(model_dir) / METADATA_FILE).write_text(json.dumps(metadata, indent=1))


def write_model_folder(model_dir: Path, model_bytes: bytes, metadata: dict[str, Any]) -> dict[str, Any]:
    """Write ``model.onnx`` and ``metadata.json`` (with the bytes' sha256 set); returns the metadata written."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / MODEL_FILE).write_bytes(model_bytes)
    metadata = {**metadata, "sha256": sha256_of_bytes(model_bytes)}
    write_metadata(model_dir, metadata)
    return metadata


def derived_metadata(base: dict[str, Any], version: str) -> dict[str, Any]:
    """The metadata of a model made from ``base``'s (quantised, fine-tuned, merged): the base's, with the new
    version and date and without its test metrics, which do not describe the new file.

    >>> derived_metadata({"version": "1", "metrics": {"n": 3}, "classes": {}}, "2")["version"], "metrics" in _
    ('2', False)
    """
    import copy
    import datetime as dt

    metadata = copy.deepcopy(base)
    metadata.pop("metrics", None)
    return metadata | {"version": version, "created": dt.date.today().isoformat()}
