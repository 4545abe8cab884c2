"""The build: from the data to the shipped model folder, in one function (``faceattrs build``).

The steps, in order (minutes measured by ``build_times.json`` on these 2 CPU cores; docs/history.md):

0. ``data``: UTKFace's crops read, FairFace's photos cropped by the serving pipeline (cached in ``.cache/``)
1. ``train``: EfficientNet-Lite1 multi-task on both data sets (``training.recipes.multitask``)
2. ``first``: exported to ONNX, calibrated on validation (``build.export.ship``)
3. ``first_int8``: stored as int8, recalibrated (``build.quantize``)
4. ``dlib_net.xml``: dlib's face-recognition network dumped as XML (``tools/dlib_face_net``; needs g++ and pip)
5. the output folder: the int8 model with descriptor heads on that network (``build.descriptor_heads``;
   its ethnicity, gender and age distribution blended with logistic regressions on the face descriptors),
   scored once

Every step writes into ``work_dir``; a step whose output exists is skipped, so an interrupted build
is resumed by running it again (the training resumes from its checkpoint). Each folder is written
under a ``.partial`` name and renamed when complete, so a crash never leaves a folder that looks done.
The validation part chooses and calibrates everything; the test part is read once, by the last step,
and not at all with ``validation_only``.

>>> BuildConfig().version, BuildConfig().training.backbone, BuildConfig().training.fairface
('21', 'lite1', True)
>>> build(BuildConfig(work_dir=Path("runs/build"), out=Path("src/faceattrs/assets")))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from faceattrs.build.quantize import CALIBRATION_FACES, DEFAULT_METHOD
from faceattrs.data.folders import FAIRFACE_DIR, FAIRFACE_SPLIT, UTKFACE_DIR, UTKFACE_SPLIT
from faceattrs.model_folder import MODEL_FILE, derived_metadata, read_model_folder, write_model_folder
from faceattrs.training.recipes import MultiTaskSettings

#: the script that dumps dlib's network: in the checkout the build runs from (its data lies beside it too)
DLIB_DUMP_SCRIPT = Path(__file__).resolve().parents[3] / "tools" / "dlib_face_net" / "make_net_xml.sh"


@dataclass(frozen=True)
class BuildConfig:
    """Everything the build reads; the defaults build the shipped model."""

    work_dir: Path = Path("runs/build")
    #: the finished model folder (default ``work_dir/model``); ``src/faceattrs/assets`` replaces the shipped one
    out: Path | None = None
    version: str = "21"
    data: Path = UTKFACE_DIR
    split: Path = UTKFACE_SPLIT
    #: FairFace's folder and split, read when the training settings ask for it (``training.fairface``)
    fairface_data: Path = FAIRFACE_DIR
    fairface_split: Path = FAIRFACE_SPLIT
    #: score the finished model on validation only (``validation.json``): a candidate, the test part unread
    validation_only: bool = False
    seed: int = 0
    #: UTKFace and FairFace, 6 epochs: what fits the build's 150 minutes on 2 cores
    training: MultiTaskSettings = field(default_factory=lambda: MultiTaskSettings(fairface=True, epochs=6))
    #: the age range's target coverage, fitted on validation
    coverage: float = 0.9
    quantize_method: str = DEFAULT_METHOD
    quantize_faces: int = CALIBRATION_FACES
    #: steps 4-5: blend in heads on dlib's face descriptors; False ships the int8 network alone
    descriptor_heads: bool = True
    #: how the descriptor network's int8 activation ranges are set
    descriptor_calibration: str = DEFAULT_METHOD

    @property
    def model_dir(self) -> Path:
        return Path(self.out) if self.out is not None else Path(self.work_dir) / "model"


def _step(name: str, log: Callable[[str], None]) -> float:
    log(f"== {time.strftime('%H:%M:%S')} {name}")
    return time.perf_counter()


def _minutes(t0: float) -> float:
    return round((time.perf_counter() - t0) / 60, 2)


def _into(folder: Path, write: Callable[[Path], Any]) -> None:
    """Run ``write(partial)`` and rename ``partial`` to ``folder`` once it is complete."""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    write(partial)
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial.replace(folder)


def build(config: BuildConfig = BuildConfig(), log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the model folder ``config.model_dir`` from the data; returns the final scores (test, or validation).

    Steps whose output exists in ``config.work_dir`` are skipped (see the module docstring).
    """
    from faceattrs.build import descriptor_heads, export, quantize
    from faceattrs.training.checkpoint import load_weights
    from faceattrs.training.engine import train
    from faceattrs.training.protocols import project_parts
    from faceattrs.training.recipes import multitask

    work = Path(config.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    recipe = multitask(**asdict(config.training))
    times_file = work / "build_times.json"  # minutes per step, kept across resumed runs
    timings: dict[str, float] = json.loads(times_file.read_text()) if times_file.is_file() else {}
    t0 = _step("0/5 read the data and crop FairFace's faces (cached in .cache/)", log)
    fairface = config.fairface_data if config.training.fairface else None
    parts = project_parts(recipe.input_size, config.data, config.split, fairface, config.fairface_split)
    timings.setdefault("data", _minutes(t0))  # a resumed build reads the cache: keep the first run's time
    run, first, int8, net_xml = work / "multitask", work / "first", work / "first_int8", work / "dlib_net.xml"

    if not (run / "model.safetensors").is_file():
        t0 = _step("1/5 train", log)
        train(recipe, parts["train"], parts["val"], run, seed=config.seed, resume=True,
              extra_config={"protocol": "project", "split": str(config.split)})  # fmt: skip
        timings["train"] = _minutes(t0)
    if not (first / MODEL_FILE).is_file():
        t0 = _step("2/5 export and calibrate", log)
        run_config = json.loads((run / "config.json").read_text()) | {"version": f"{config.version}-first"}
        shipped = multitask(**(asdict(config.training) | {"pretrained": False}))
        model = load_weights(shipped.build_model(), run / "model.safetensors").eval()

        def write_first(folder: Path) -> None:
            export.ship(model, shipped, parts, run_config, folder, split_file=config.split, coverage=config.coverage)

        _into(first, write_first)
        timings["export"] = _minutes(t0)
    if not (int8 / MODEL_FILE).is_file():
        t0 = _step("3/5 store as int8", log)
        _into(int8, lambda folder: quantize.quantize_model_dir(
            first, folder, parts, version=f"{config.version}-first-int8",
            method=config.quantize_method, n_faces=config.quantize_faces))  # fmt: skip
        timings["quantize"] = _minutes(t0)

    if config.descriptor_heads and not net_xml.is_file():
        t0 = _step("4/5 dump dlib's face-recognition network", log)
        partial = net_xml.with_name(net_xml.name + ".partial")
        subprocess.run(["bash", str(DLIB_DUMP_SCRIPT), str(partial)], check=True)
        partial.replace(net_xml)
        timings["dlib_net"] = _minutes(t0)

    t0 = _step("5/5 add the descriptor heads and score" if config.descriptor_heads else "5/5 score", log)
    out = config.model_dir

    def write_final(folder: Path) -> None:
        if config.descriptor_heads:
            descriptor_heads.add_descriptor_heads(int8, net_xml, folder, parts, version=config.version, int8=True,
                                                  calibration_method=config.descriptor_calibration)  # fmt: skip
        else:
            onnx_bytes, metadata = read_model_folder(int8)
            write_model_folder(folder, onnx_bytes, derived_metadata(metadata, config.version))

    if out.exists():
        shutil.rmtree(out.with_name(out.name + ".partial"), ignore_errors=True)
        write_final(out)  # e.g. src/faceattrs/assets, which holds other files too: written in place
    else:
        _into(out, write_final)
    if config.validation_only:
        scores = {"val": export.score_validation(out, parts["val"])}
    else:
        scores = export.score_shipped(out, parts)
    timings["final_and_scoring"] = _minutes(t0)
    times_file.write_text(json.dumps(timings, indent=1))
    spent = ", ".join(f"{step} {minutes:.1f}" for step, minutes in timings.items())
    log(f"== {time.strftime('%H:%M:%S')} done: {out} (minutes: {spent}; {sum(timings.values()):.0f} in all)")
    return scores
