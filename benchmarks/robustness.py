"""How the shipped model holds up when photos do not look like UTKFace's crops.

Photos from other sources differ from the training crops in framing, resolution, compression,
sharpness, light, colour and pose. Each condition below degrades the same random sample of the
**validation** part's crops in one such way and sends the result through the full photo pipeline
(decode -> detect -> align -> model), as a photo from another data set would go. Reported per
condition: the share of faces found, the share the pipeline flags as small, blurry or noisy (its warning that
an estimate is less trustworthy), then age MAE, CS@5, ethnicity and gender accuracy and the 90%
age range's coverage on the faces found (the most confident face of each image). Where the
condition leaves the geometry alone, the degraded crop is also fed to the model directly
(``aligned=True``), which separates what the detector and alignment lose from what the model loses.

Validation part only: pipeline choices may be made on these figures without touching test.

Usage::

    python benchmarks/robustness.py [--faces N] [--model-dir DIR]

Writes ``benchmarks/results/robustness.json``, ``.md`` and ``robustness.png``; with ``--model-dir``
(a candidate model folder) the three files go into that folder instead.
"""

from __future__ import annotations

import argparse
import io
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from sklearn.metrics import accuracy_score
from tqdm import tqdm

from faceattrs import Analyzer
from faceattrs.data.folders import UTKFACE_DIR
from faceattrs.data.labels import ETHNICITIES, GENDERS, parse_utkface_name
from faceattrs.data.split import read_split
from faceattrs.evaluation.metrics import age_metrics
from faceattrs.model_folder import model_identity
from results_io import RESULTS, save_results

Degrade = Callable[[Image.Image], Image.Image]


def _centre_crop(fraction: float) -> Degrade:
    def crop(im: Image.Image) -> Image.Image:
        side = round(im.width * fraction)
        left = (im.width - side) // 2
        return im.crop((left, left, left + side, left + side))

    return crop


def _pad(factor: float) -> Degrade:
    """The crop in the middle of a canvas ``factor`` times larger, its border pixels stretched outwards."""

    def pad(im: Image.Image) -> Image.Image:
        extra = round(im.width * (factor - 1) / 2)
        return Image.fromarray(np.pad(np.asarray(im), ((extra, extra), (extra, extra), (0, 0)), mode="edge"))

    return pad


def _downscale(side: int) -> Degrade:
    return lambda im: im.resize((side, side), Image.Resampling.LANCZOS)


def _jpeg(quality: int) -> Degrade:
    def jpeg(im: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=quality)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")

    return jpeg


def _blur(radius: float) -> Degrade:
    return lambda im: im.filter(ImageFilter.GaussianBlur(radius))


def _noise(sigma: float) -> Degrade:
    def noise(im: Image.Image) -> Image.Image:
        rng = np.random.default_rng(zlib.crc32(im.tobytes()))  # the same noise for the same face in every run
        noisy = np.asarray(im, np.float32) + rng.normal(0, sigma, (im.height, im.width, 3))
        return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))

    return noise


def _pixels(transform: Callable[[np.ndarray], np.ndarray]) -> Degrade:
    return lambda im: Image.fromarray(np.clip(transform(np.asarray(im, np.float32)), 0, 255).astype(np.uint8))


def _rotate(degrees: float) -> Degrade:
    return lambda im: im.rotate(degrees, Image.Resampling.BILINEAR, expand=True, fillcolor=(128, 128, 128))


#: name -> (kind, degradation, whether it keeps the crop's geometry)
CONDITIONS: dict[str, tuple[str, Degrade, bool]] = {
    "as they are": ("reference", lambda im: im, True),
    "tighter crop (central 80%)": ("framing", _centre_crop(0.8), False),
    "tight crop (central 60%)": ("framing", _centre_crop(0.6), False),
    "looser crop (2x canvas)": ("framing", _pad(2.0), False),
    "loose crop (4x canvas)": ("framing", _pad(4.0), False),
    "100 px": ("resolution", _downscale(100), True),
    "64 px": ("resolution", _downscale(64), True),
    "40 px": ("resolution", _downscale(40), True),
    "JPEG quality 30": ("compression", _jpeg(30), True),
    "JPEG quality 10": ("compression", _jpeg(10), True),
    "blur (Gaussian, 1.5 px)": ("sharpness", _blur(1.5), True),
    "blur (Gaussian, 3 px)": ("sharpness", _blur(3.0), True),
    "noise (sd 10)": ("sharpness", _noise(10), True),
    "noise (sd 25)": ("sharpness", _noise(25), True),
    "dark (x0.35)": ("light", _pixels(lambda x: x * 0.35), True),
    "bright (x1.6)": ("light", _pixels(lambda x: x * 1.6), True),
    "low contrast (50% grey)": ("light", _pixels(lambda x: 0.5 * x + 64), True),
    "greyscale": ("colour", lambda im: im.convert("L").convert("RGB"), True),
    "warm cast (R x1.2, B x0.8)": ("colour", _pixels(lambda x: x * np.array([1.2, 1.0, 0.8], np.float32)), True),
    "rotated 20°": ("pose", _rotate(20), False),
    "rotated 45°": ("pose", _rotate(45), False),
}


def score(faces, labels) -> dict[str, float]:
    """Figures on the faces found (``None`` where no face was found)."""
    found = [i for i, f in enumerate(faces) if f is not None]
    out: dict[str, float] = {"n": len(faces), "found": len(found) / len(faces)}
    if not found:
        return out
    faces, labels = [faces[i] for i in found], [labels[i] for i in found]
    age = np.array([lab.age for lab in labels], float)
    low, high = np.array([f.age_low for f in faces]), np.array([f.age_high for f in faces])
    age_figures = age_metrics(age, [f.age for f in faces])
    return out | {
        "flagged": float(np.mean([bool(f.quality_flags) for f in faces])),
        "age_mae": age_figures["mae"],
        "age_cs5": age_figures["cs5"],
        "ethnicity_accuracy": accuracy_score(
            [lab.race for lab in labels], [ETHNICITIES.index(f.ethnicity) for f in faces]
        ),
        "gender_accuracy": accuracy_score([lab.gender for lab in labels], [GENDERS.index(f.gender) for f in faces]),
        "range_coverage": float(((age >= low) & (age <= high)).mean()),
    }


def run(analyzer: Analyzer, images: list[Image.Image], aligned: bool, desc: str) -> list:
    faces = []
    sources = (np.asarray(im) for im in images)
    for result in tqdm(analyzer.analyze_many(sources, aligned=aligned), total=len(images), desc=desc, leave=False):
        faces.append(max(result.faces, key=lambda f: f.det_score) if result.faces else None)
    return faces


def _cells(r: dict | None) -> str:
    if r is None:
        return "| | | | | |"
    if "age_mae" not in r:
        return "| — | — | — | — | — |"
    return (
        f"| {r['age_mae']:.2f} | {100 * r['age_cs5']:.1f}% | {100 * r['ethnicity_accuracy']:.1f}% | "
        f"{100 * r['gender_accuracy']:.1f}% | {100 * r['range_coverage']:.1f}% |"
    )


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["conditions"]
    names = list(rows)
    y = np.arange(len(names))[::-1]
    panels = (
        ("found", "faces found (%)", 100),
        ("age_mae", "age MAE (years)", 1),
        ("ethnicity_accuracy", "ethnicity accuracy (%)", 100),
        ("gender_accuracy", "gender accuracy (%)", 100),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 0.32 * len(names) + 1.6), sharey=True)
    for ax, (key, title, scale) in zip(axes, panels, strict=True):
        values = [scale * rows[n]["pipeline"].get(key, np.nan) for n in names]
        ax.barh(y, values, color=["#4c72b0" if rows[n]["kind"] != "reference" else "#55a868" for n in names])
        ax.axvline(scale * rows["as they are"]["pipeline"][key], color="#55a868", lw=1, ls="--")
        ax.set_title(title, fontsize=10)
        finite = [v for v in values if np.isfinite(v)]
        if key != "age_mae":
            ax.set_xlim(max(0, min(finite) - 5), 100)
    axes[0].set_yticks(y, names, fontsize=8)
    fig.suptitle(
        f"Degraded validation crops through the full photo pipeline (model version {report['model']['version']}, "
        f"{report['faces']} faces)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=0, help="validation faces sampled (seed 0); 0: all")
    parser.add_argument("--model-dir", type=Path, help="a candidate model folder (default: the shipped model)")
    args = parser.parse_args()

    names = sorted(n for n, part in read_split().items() if part == "val")
    n_val = len(names)
    n_faces = min(args.faces or n_val, n_val)
    pick = np.sort(np.random.default_rng(0).choice(len(names), n_faces, replace=False))
    names = [names[i] for i in pick]
    labels = [parse_utkface_name(n) for n in names]
    crops = [Image.open(UTKFACE_DIR / n).convert("RGB") for n in names]
    analyzer = Analyzer(args.model_dir)

    report = {"model": model_identity(args.model_dir), "part": "val", "faces": len(names), "conditions": {}}
    for name, (kind, degrade, keeps_geometry) in tqdm(CONDITIONS.items(), desc="conditions"):
        images = [degrade(im) for im in crops]
        row = {"kind": kind, "pipeline": score(run(analyzer, images, False, name), labels)}
        if keeps_geometry:
            row["direct"] = score(run(analyzer, images, True, f"{name} (direct)"), labels)
        report["conditions"][name] = row

    sample = f"All {n_faces} validation crops" if n_faces == n_val else f"{n_faces} random validation crops (seed 0)"
    lines = [
        "| condition | kind | faces found | age MAE | CS@5 | ethnicity acc. | gender acc. | 90% range coverage | "
        "flagged (small, blurry, noisy, cut off or compressed) | direct: age MAE | CS@5 | ethnicity acc. | "
        "gender acc. | 90% range coverage |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in report["conditions"].items():
        p = row["pipeline"]
        lines.append(
            f"| {name} | {row['kind']} | {100 * p['found']:.1f}% {_cells(p)} {100 * p.get('flagged', 0):.1f}% |"
            f"{_cells(row.get('direct'))[1:]}"
        )
    md = "\n".join(lines) + (
        f"\n\n{sample}, each degraded and sent through detect → align → model; "
        'figures on the faces found (the most confident face of each image). "direct": the degraded crop fed to the '
        "model without detection (conditions that keep UTKFace's geometry). "
        f"Model version {report['model']['version']}.\n"
    )
    out = args.model_dir or RESULTS
    save_results("robustness", report, md, out)
    plot(report, out / "robustness.png")


if __name__ == "__main__":
    main()
