"""Would a face-recognition network close the ethnicity and gender gaps? Measured on validation.

The issue names a face-pretrained backbone as the published way past ImageNet features. One ships
in a wheel with stated provenance: dlib's face-recognition ResNet (``face_recognition_models``,
public domain / CC0; trained from scratch by Davis King on about 3 million faces of 7,485
identities from FaceScrub, VGG Face and web images, with an identity metric loss: no age, gender or
ethnicity labels). This measures what its frozen 128-d descriptors add to the shipped model:

1. descriptors of every train and validation face (never test), the dlib way: HOG face box (a
   fixed central box where none is found), 5 landmarks, a 150 px chip with 0.25 padding;
2. logistic-regression heads for ethnicity and gender, fitted on the train part's descriptors;
3. on validation, a weighted mean of the shipped model's calibrated log-probabilities and the heads'
   (weight on a 0..1 grid), the weight fitted on one random half of validation and scored on the
   other, both ways, over several halvings — the same protocol as ``ethnicity_decision.py``.

It is a feasibility check, not a shipped model: inference would need the network in ONNX. Needs
dlib (compiled from source by pip, about 15 minutes here) and the model wheel::

    pip install dlib==20.0.1 face_recognition_models==0.3.0
    python benchmarks/face_embedding_check.py [--halvings 5] [--workers 2] [--net net.xml] [--model-dir DIR]

The saved table blended model version 6, before the descriptor heads shipped (version 9 holds them
already); version 6's ``model.onnx`` and ``metadata.json`` (``git show 1aeac70:src/faceattrs/assets/...``)
in a folder passed as ``--model-dir`` redo it.

With ``--net`` (the XML that tools/dlib_face_net/dump_dlib_net writes) it also scores descriptors made
the way faceattrs could serve them, without dlib: the aligned crop resized, through ONNX.

Descriptors are cached in ``runs/face_descriptors.npz`` (about 25 minutes with 2 workers).
Writes ``benchmarks/results/face_embedding_check.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from faceattrs.build.descriptor_heads import fit_blend_weight
from faceattrs.build.export import onnx_predictions
from faceattrs.data.cache import load_faces
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.model_folder import model_identity
from faceattrs.training.protocols import project_protocol
from results_io import save_results

DATA = Path("../shared/datasets/utkface/UTKFace")
CACHE = Path("runs/face_descriptors.npz")
_dlib: dict = {}


def _descriptor(file: str) -> tuple[np.ndarray, bool]:
    """dlib's 128-d descriptor of one UTKFace image, and whether its HOG detector found the face."""
    import dlib
    from PIL import Image

    if not _dlib:  # once per worker process
        # the files, not the package: its __init__ imports pkg_resources, which new setuptools lack
        models = Path(find_spec("face_recognition_models").submodule_search_locations[0]) / "models"
        _dlib["detect"] = dlib.get_frontal_face_detector()
        _dlib["landmarks"] = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        _dlib["describe"] = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
    image = np.asarray(Image.open(DATA / file).convert("RGB"))
    boxes = _dlib["detect"](image, 0)
    # UTKFace images are 200 px face crops; the fallback box is where their faces sit
    box = max(boxes, key=lambda b: b.area()) if boxes else dlib.rectangle(30, 40, 170, 180)
    chip = dlib.get_face_chip(image, _dlib["landmarks"](image, box), size=150, padding=0.25)
    return np.array(_dlib["describe"].compute_face_descriptor(chip), np.float32), bool(boxes)


def descriptors(names: list[str], workers: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Descriptors of ``names`` (cached), whether a face was found, and seconds per face per worker."""
    if CACHE.exists():
        cached = np.load(CACHE)
        if list(cached["names"]) == names:
            return cached["descriptors"], cached["found"], float(cached["seconds_per_face"])
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        out = list(tqdm(pool.map(_descriptor, names, chunksize=64), total=len(names), desc="descriptors"))
    seconds = (time.perf_counter() - start) * workers / len(names)
    found = np.array([f for _, f in out])
    values = np.stack([d for d, _ in out])
    CACHE.parent.mkdir(exist_ok=True)
    np.savez(CACHE, names=np.array(names), descriptors=values, found=found, seconds_per_face=seconds)
    return values, found, seconds


def resized_crop_descriptors(names: list[str], net_xml: Path) -> np.ndarray:
    """Descriptors without dlib: the whole aligned 200 px crop resized to 150 px, through the network
    rebuilt from ``net_xml`` (tools/dlib_face_net) and run by onnxruntime, as faceattrs would serve it.

    dlib's own chips of these faces cover the whole crop (median chip box -9..208 px over 429 train
    faces), so the resize stands in for its landmark alignment.
    """
    import sys

    from PIL import Image

    from faceattrs.models.dlib_resnet import DlibResNet, read_layers

    sys.path.insert(0, str(Path(__file__).parents[1] / "tools" / "dlib_face_net"))
    from read_dlib_net import onnx_session

    net, _ = onnx_session(DlibResNet(read_layers(net_xml)).eval())
    out = []
    for start in tqdm(range(0, len(names), 64), desc="descriptors (ONNX)"):
        crops = [Image.open(DATA / n).convert("RGB") for n in names[start : start + 64]]
        chips = np.stack([np.asarray(c.resize((150, 150), Image.BILINEAR)) for c in crops])
        out.append(net.run(None, {"images": chips})[0])
    return np.concatenate(out)


def standardised(values: np.ndarray, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation rows of ``values`` (train first), scaled by the train rows' mean and spread."""
    scaler = StandardScaler().fit(values[:n_train])
    return scaler.transform(values[:n_train]), scaler.transform(values[n_train:])


def blend_scores(shipped: np.ndarray, heads: np.ndarray, y: np.ndarray, halvings: int) -> dict[str, list[float]]:
    """Accuracy and macro-F1 of the shipped model alone and blended, weight fitted on the other half."""
    scores: dict[str, list[float]] = {k: [] for k in ("acc", "f1", "acc_blend", "f1_blend", "weight")}
    rng = np.random.default_rng(0)
    for _ in range(halvings):
        order = rng.permutation(len(y))
        halves = order[: len(y) // 2], order[len(y) // 2 :]
        for fit, held in (halves, halves[::-1]):
            w = fit_blend_weight(shipped[fit], heads[fit], y[fit])
            blend = ((1 - w) * shipped[held] + w * heads[held]).argmax(1)
            alone = shipped[held].argmax(1)
            scores["acc"].append(accuracy_score(y[held], alone))
            scores["f1"].append(f1_score(y[held], alone, average="macro"))
            scores["acc_blend"].append(accuracy_score(y[held], blend))
            scores["f1_blend"].append(f1_score(y[held], blend, average="macro"))
            scores["weight"].append(float(w))
    return scores


def mean_sd(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    return f"{np.mean(values) * scale:.{digits}f} ± {np.std(values) * scale:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--halvings", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--net", type=Path, help="the XML of tools/dlib_face_net: also score dlib-free descriptors")
    parser.add_argument(
        "--model-dir", type=Path, help="the model to blend with (default: the shipped one; the table used version 6)"
    )
    args = parser.parse_args()
    model = AttributeModel(args.model_dir)
    parts = project_protocol(load_faces(DATA, model.input_size, progress=False))
    train, val = parts["train"], parts["val"]
    names = list(train.names) + list(val.names)
    values, found, seconds = descriptors(names, args.workers)
    sources = {"dlib chip (HOG box, 5 landmarks)": values}
    if args.net:
        sources["resized 200 px crop, ONNX"] = resized_crop_descriptors(names, args.net)
    _, calibrated, _ = onnx_predictions(model, val.images)
    shipped = {"ethnicity": calibrated.ethnicity_proba, "gender": calibrated.gender_proba}
    rows, results = [], {}
    for source, source_values in sources.items():
        x_train, x_val = standardised(source_values, len(train.names))
        for task, y_train, y_val in (("ethnicity", train.race, val.race), ("gender", train.gender, val.gender)):
            known_train, known_val = y_train >= 0, y_val >= 0
            head = LogisticRegression(C=0.1, max_iter=3000).fit(x_train[known_train], y_train[known_train])
            heads = head.predict_log_proba(x_val[known_val])
            y = y_val[known_val]
            s = blend_scores(np.log(shipped[task][known_val] + 1e-9), heads, y, args.halvings)
            alone = heads.argmax(1)
            r = s | {"head_acc": accuracy_score(y, alone), "head_f1": f1_score(y, alone, average="macro")}
            results[f"{task}, {source}"] = r
            rows.append(
                f"| {task} | {source} | {r['head_acc'] * 100:.2f}% | {mean_sd(s['acc'])}% | "
                f"{mean_sd(s['acc_blend'])}% | {mean_sd(s['f1'], 1, 3)} | {mean_sd(s['f1_blend'], 1, 3)} | "
                f"{np.mean(s['weight']):.2f} |"
            )
    x_train, x_val = standardised(values, len(train.names))
    # identity descriptors are trained to ignore age: a linear read-out of age shows how little is left
    age = Ridge(alpha=10).fit(x_train, np.log1p(train.age))
    age_mae = float(np.abs(np.expm1(age.predict(x_val)) - val.age).mean())
    lines = [
        "| task (validation) | descriptors from | descriptor head alone | shipped model | shipped + descriptor head | "
        "macro-F1 shipped | macro-F1 blended | blend weight |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        f"\n{len(train.names)} train faces fit the heads, {len(val.names)} validation faces; {args.halvings} random "
        f"halvings of validation, the blend weight fitted on one half and scored on the other (mean ± standard "
        f"deviation). dlib's HOG detector found {found.mean():.1%} of the faces; its CPU pipeline took "
        f"{seconds * 1000:.0f} ms a face per worker. A linear read-out of age from the dlib-chip descriptors has a "
        f"validation MAE of {age_mae:.1f} years (shipped model 4.4): they carry little age.",
    ]
    data = {"model": model_identity(args.model_dir), "faces_found": float(found.mean()), "seconds_per_face": seconds}
    save_results("face_embedding_check", data | {"tasks": results, "age_ridge_mae": age_mae}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
