"""Cheap levers on the shipped model's gender errors, measured on the validation part.

Gender is the one goal the shipped model misses, mostly on children (``child_gender.py``). Three
levers need no training, so they are measured here before anything is built:

- **mirrored descriptors**: the first network already averages each face with its mirror image, the
  descriptor network does not; averaging the shipped model's output on a face and on its mirror
  gives the descriptor network that mirror pass;
- **crop test-time augmentation**: the shipped model on zoomed-in crops of the 200 px face (a centre
  crop of 184 px; 188 px crops at the four corners), alone and averaged with the face as it is;
- **a blend weight per predicted age**: the shipped gender output is a weighted mean of the two
  networks' log-probabilities with one weight; here the weight is fitted separately for faces the
  model thinks are 0-3, 4-12 and 13 or older, on one random half of validation and scored on the
  other (20 halvings, both ways), against one weight fitted and scored the same way.

Validation only: the test part is never read.

Usage::

    python benchmarks/gender_levers.py

Writes ``benchmarks/results/gender_levers.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from faceattrs.build.descriptor_heads import fit_blend_weight, log_softmax, strip_descriptor_heads
from faceattrs.build.export import onnx_predictions
from faceattrs.data.cache import load_faces
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.model_folder import default_model_dir, model_identity
from faceattrs.preprocessing import to_model_input
from faceattrs.training.protocols import project_protocol
from results_io import save_results

DATA = Path("../shared/datasets/utkface/UTKFace")
CROP_SIZE = 200
#: (side, left, top) of each crop of the 200 px face
CENTRE = (184, 8, 8)
CORNERS = ((188, 0, 0), (188, 12, 0), (188, 0, 12), (188, 12, 12))
#: predicted-age groups of the per-age blend weight: [low, high)
AGE_BINS = ((0, 4), (4, 13), (13, 200))
HALVINGS = 20


def crops(faces: np.ndarray, side: int, left: int, top: int, size: int) -> np.ndarray:
    """Each 200 px face cut to ``side`` px at (``left``, ``top``) and resized as the model expects.

    >>> crops(np.zeros((2, 200, 200, 3), np.uint8), 184, 8, 8, 64).shape
    (2, 64, 64, 3)
    """
    return np.stack([to_model_input(face[top : top + side, left : left + side], size) for face in faces])


def gender_logp(model: AttributeModel, images: np.ndarray) -> tuple[np.ndarray, ...]:
    """Calibrated gender and ethnicity log-probabilities, the predicted age and the raw gender output."""
    logits, _, p = onnx_predictions(model, images)
    return np.log(p.gender_proba), np.log(p.ethnicity_proba), p.age, logits["gender_logits"]


def accuracies(gender: np.ndarray, ethnicity: np.ndarray, faces) -> dict:
    """Gender accuracy overall and by age; ethnicity accuracy (faces with a label)."""
    right = gender.argmax(1) == faces.gender
    known = faces.race >= 0
    return {
        "gender": float(right.mean()),
        "gender_0_2": float(right[faces.age <= 2].mean()),
        "gender_0_12": float(right[faces.age <= 12].mean()),
        "gender_13_plus": float(right[faces.age >= 13].mean()),
        "ethnicity": float((ethnicity.argmax(1) == faces.race)[known].mean()),
    }


def per_age_weight(first: np.ndarray, head: np.ndarray, y: np.ndarray, age: np.ndarray, seed: int = 0) -> dict:
    """Cross-fitted accuracy of one blend weight against one weight per predicted-age group.

    ``first`` and ``head`` are the two networks' gender log-probabilities. Each halving fits the
    weights on one half and scores the other, both ways.
    """
    rng = np.random.default_rng(seed)
    one, by_age = [], []
    for _ in range(HALVINGS):
        order = rng.permutation(len(y))
        halves = order[: len(y) // 2], order[len(y) // 2 :]
        for fit, score in (halves, halves[::-1]):
            w = fit_blend_weight(first[fit], head[fit], y[fit])
            one.append((((1 - w) * first[score] + w * head[score]).argmax(1) == y[score]).mean())
            predicted = np.empty(len(score), int)
            for low, high in AGE_BINS:
                f = fit[(age[fit] >= low) & (age[fit] < high)]
                s = (age[score] >= low) & (age[score] < high)
                wb = fit_blend_weight(first[f], head[f], y[f])
                predicted[s] = ((1 - wb) * first[score][s] + wb * head[score][s]).argmax(1)
            by_age.append((predicted == y[score]).mean())
    one, by_age = np.array(one), np.array(by_age)
    return {
        "one_weight": float(one.mean()),
        "one_weight_sd": float(one.std()),
        "per_age_weight": float(by_age.mean()),
        "per_age_weight_sd": float(by_age.std()),
        "difference": float((by_age - one).mean()),
        "difference_sd": float((by_age - one).std()),
    }


def network_parts(model: AttributeModel, images: np.ndarray, gender_score: np.ndarray) -> tuple[np.ndarray, ...]:
    """The first network's and the descriptor head's gender log-probabilities.

    ``model`` is the one in ``default_model_dir()``, ``gender_score`` its raw gender output on ``images``:
    ``(1 - w) * log_softmax(first / t) + w * head`` (metadata); with the first network cut out of the
    file (``strip_descriptor_heads``) the head's term follows exactly.
    """
    blend = model.metadata["training"]["descriptor_heads"]
    w, t = blend["head_weight"]["gender"], blend["model_temperatures"]["gender"]
    with tempfile.TemporaryDirectory() as folder:
        strip_descriptor_heads(default_model_dir(), Path(folder))
        first_logits, _, _ = onnx_predictions(AttributeModel(Path(folder)), images)
    first = log_softmax(first_logits["gender_logits"], t)
    return first, (gender_score - (1 - w) * first) / w


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    model = AttributeModel()
    size = model.input_size
    val = project_protocol(load_faces(DATA, CROP_SIZE, progress=False))["val"]
    faces = crops(val.images, CROP_SIZE, 0, 0, size)

    outputs = {"the face as it is (shipped)": gender_logp(model, faces)}
    outputs["its mirror image"] = gender_logp(model, np.ascontiguousarray(faces[:, :, ::-1]))
    outputs["centre crop 184 px"] = gender_logp(model, crops(val.images, *CENTRE, size))
    corners = [gender_logp(model, crops(val.images, *c, size)) for c in CORNERS]
    rows = {name: accuracies(g, e, val) for name, (g, e, *_) in outputs.items()}

    def mean_of(*parts):
        return accuracies(sum(p[0] for p in parts), sum(p[1] for p in parts), val)

    shipped, mirrored = outputs["the face as it is (shipped)"], outputs["its mirror image"]
    rows["face + mirror averaged (mirrored descriptors)"] = mean_of(shipped, mirrored)
    rows["face + 4 corner crops averaged"] = mean_of(shipped, *corners)
    rows["face + centre + 4 corner crops averaged"] = mean_of(shipped, outputs["centre crop 184 px"], *corners)

    first, head = network_parts(model, faces, shipped[3])
    by_network = {
        "first network alone": accuracies(first, shipped[1], val),
        "descriptor head alone": accuracies(head, shipped[1], val),
    }
    weights = per_age_weight(first, head, val.gender, shipped[2])  # the blend leaves the age as it is
    result = {
        "model": model_identity(),
        "validation_faces": len(val),
        "rows": rows,
        "networks": by_network,
        "blend_weight": weights,
    }
    lines = [
        "| shipped model on (validation) | gender | ages 0-2 | ages 0-12 | 13 or older | ethnicity |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in {**rows, **{f"{k} (gender only)": v for k, v in by_network.items()}}.items():
        ethnicity = "—" if "alone" in name else f"{r['ethnicity']:.2%}"
        lines.append(
            f"| {name} | {r['gender']:.2%} | {r['gender_0_2']:.1%} | {r['gender_0_12']:.1%} | "
            f"{r['gender_13_plus']:.1%} | {ethnicity} |"
        )
    lines.append(
        f"\n{len(val):,} validation faces; calibrated probabilities, averaged as log-probabilities. "
        "Blend weight of the two networks, fitted on one half and scored on the other "
        f"({HALVINGS} halvings, both ways): one weight "
        f"{weights['one_weight']:.2%} ± {weights['one_weight_sd']:.2%}, one weight per predicted age "
        f"(0-3, 4-12, 13+) {weights['per_age_weight']:.2%} ± {weights['per_age_weight_sd']:.2%} "
        f"(difference {weights['difference']:+.2%} ± {weights['difference_sd']:.2%})."
    )
    save_results("gender_levers", result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
