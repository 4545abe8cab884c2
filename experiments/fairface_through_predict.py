"""Two models on FairFace's validation photos through the whole photo pipeline, side by side, in one run.

Each photo goes through ``Analyzer.analyze_many`` (decode -> detect -> align -> model), as ``faceattrs predict``
sends it; the labelled face is the largest one (``pick_face``, as the training crops take it). Reported per model:
the share of predicted ages (whole years) inside the labelled age group, gender and 5-group ethnicity accuracy, and
gender for ages 0-9. Run once for version 18 against version 17 (docs/history.md)::

    mkdir -p /tmp/v17 && git show a02320a~1:src/faceattrs/assets/model.onnx > /tmp/v17/model.onnx \\
        && git show a02320a~1:src/faceattrs/assets/metadata.json > /tmp/v17/metadata.json
    python experiments/fairface_through_predict.py /tmp/v17 src/faceattrs/assets
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from faceattrs import Analyzer
from faceattrs.data.fairface import pick_face, read_fairface
from faceattrs.data.folders import FAIRFACE_DIR, FAIRFACE_SPLIT
from faceattrs.data.labels import ETHNICITIES, GENDERS


def main(model_dirs: list[str]) -> None:
    with open(FAIRFACE_SPLIT, newline="") as f:
        val = {row["file"] for row in csv.DictReader(f) if row["part"] == "val"}
    records = [r for r in read_fairface(FAIRFACE_DIR, hashes=False, progress=False).records if r.file in val]
    for model_dir in model_dirs:
        analyzer = Analyzer(Path(model_dir))
        n = age = gender = ethnicity = children = children_gender = 0
        for record, result in zip(records, analyzer.analyze_many([str(r.path) for r in records]), strict=True):
            if not result.faces:
                continue
            face = result.faces[pick_face(result.faces, result.width, result.height)]
            low, high = record.age_interval
            right_gender = GENDERS.index(face.gender) == record.gender
            n += 1
            age += low <= round(face.age) <= high
            gender += right_gender
            ethnicity += ETHNICITIES.index(face.ethnicity) == record.race
            if high <= 9:
                children += 1
                children_gender += right_gender
        print(
            f"version {analyzer.model.metadata['version']}: {n} of {len(records)} photos with a face; age in the group "
            f"{age / n:.1%}, gender {gender / n:.1%}, ethnicity {ethnicity / n:.1%}, gender of ages 0-9 "
            f"{children_gender / children:.1%} ({children} photos)"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
