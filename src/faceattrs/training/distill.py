"""Soft targets from trained teacher runs, for distilling them into one student network.

The average of several differently built networks (an ensemble) scores better than each of them,
but costs each one's inference. Distillation (Hinton et al., 2015) trains a single student to
match the ensemble's output distributions besides the labels, so the student keeps one
network's inference cost. The teachers' outputs on the training faces are computed once
(flip TTA, as the teachers are scored), averaged, and saved as a safetensors file that names
the faces it covers, so a student is never paired with another data set's rows.

>>> import numpy as np
>>> from faceattrs.data.cache import FaceArrays
>>> faces = FaceArrays(np.array(["a.jpg", "b.jpg"]), np.zeros((2, 1, 1, 3), np.uint8),
...                    np.array([20, 30], np.int16), np.zeros(2, np.int8), np.zeros(2, np.int8))
>>> targets = {"age": np.full((2, 117), 1 / 117, np.float32), "ethnicity": np.full((2, 5), 0.2, np.float32),
...            "gender": np.full((2, 2), 0.5, np.float32)}
>>> path = Path(tempfile.mkdtemp()) / "teachers.safetensors"
>>> save_soft_targets(path, targets, faces.names, teachers=["runs/a"])
>>> rows = soft_targets_for(path, faces.subset(np.array([1])))
>>> rows["ethnicity"].shape
(1, 5)
"""

from __future__ import annotations

import json
import tempfile  # noqa: F401  (used by the doctest)
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from faceattrs.data.cache import FaceArrays

#: the heads whose output distributions a student learns from
SOFT_TARGET_HEADS = ("age", "ethnicity", "gender")


def teacher_soft_targets(
    runs: Sequence[Path], faces_at_size, progress: bool = True
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The faces' names and the mean of the teacher runs' output probabilities (age bins, ethnicity, gender).

    ``faces_at_size(size)`` returns the faces at a run's input size (the runs may differ in size);
    each teacher is scored as it is when shipped: its EMA weights with its recipe's flip TTA.
    """
    from faceattrs.training.checkpoint import load_weights
    from faceattrs.training.engine import predict
    from faceattrs.training.recipes import build_recipe, run_settings

    sums: dict[str, np.ndarray] = {}
    names = None
    for run in runs:
        config = json.loads((Path(run) / "config.json").read_text())
        if config["recipe"] != "multitask":
            raise ValueError(f"{run} is a {config['recipe']} run; teachers must be multitask runs")
        recipe = build_recipe("multitask", **{**run_settings(config), "pretrained": False})
        model = load_weights(recipe.build_model(), Path(run) / "model.safetensors")
        faces = faces_at_size(recipe.input_size)
        if names is not None and list(faces.names) != list(names):
            raise ValueError(f"{run}: the faces differ between teachers")
        names = faces.names
        if progress:
            print(f"teacher {run}: {len(faces)} faces", flush=True)
        preds = predict(model, recipe, faces, progress=progress)
        probs = {
            "age": torch.from_numpy(preds.age_logits).softmax(1).numpy(),
            "ethnicity": preds.ethnicity_proba,
            "gender": preds.gender_proba,
        }
        for head in SOFT_TARGET_HEADS:
            sums[head] = sums.get(head, 0) + probs[head].astype(np.float64)
    return names, {head: (total / len(runs)).astype(np.float32) for head, total in sums.items()}


def save_soft_targets(path: Path, targets: dict[str, np.ndarray], names: np.ndarray, teachers: Sequence) -> None:
    """Write ``targets`` (rows aligned with ``names``) and the teacher runs' names as a safetensors file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"names": json.dumps([str(n) for n in names]), "teachers": json.dumps([str(t) for t in teachers])}
    save_file({head: np.ascontiguousarray(targets[head]) for head in SOFT_TARGET_HEADS}, str(path), metadata)


def describe_teachers(path: Path) -> list[dict]:
    """The teacher runs named in soft-target file ``path``, with backbone and training time where their folders remain.

    This goes into a distilled model's metadata, so the teachers' training cost is reported with it.
    """
    from faceattrs.training.recipes import run_settings

    with safe_open(str(path), framework="numpy") as f:
        teachers = json.loads(f.metadata()["teachers"])
    out = []
    for run in teachers:
        config_file = Path(run) / "config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        out.append(
            {
                "run": Path(run).name,
                "backbone": run_settings(config).get("backbone") if config else None,
                "epochs_run": config.get("epochs_run"),
                "train_seconds": config.get("train_seconds"),
            }
        )
    return out


def soft_targets_for(path: Path, faces: FaceArrays) -> dict[str, np.ndarray]:
    """The rows of the soft-target file ``path`` for ``faces``, in their order; every face must be covered."""
    with safe_open(str(path), framework="numpy") as f:
        names = json.loads(f.metadata()["names"])
    stored = load_file(str(path))
    row = {name: i for i, name in enumerate(names)}
    missing = [n for n in faces.names if n not in row]
    if missing:
        raise ValueError(f"{path} has no soft targets for {len(missing)} of the faces (e.g. {missing[0]})")
    index = np.array([row[n] for n in faces.names], dtype=np.int64)
    return {head: stored[head][index] for head in SOFT_TARGET_HEADS}
