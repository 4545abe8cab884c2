"""The build: from the data to the shipped model folder, in one function (``faceattrs build``).

The steps, in order (times on 2 CPU cores; the whole build took 2 h 05 to 2 h 45 by machine):

1. ``train``: the first network, EfficientNet-Lite1 multi-task (``training.recipes.multitask``) ~94-119 min
2. ``first``: exported to ONNX, calibrated on validation (``build.export.ship``)                  ~2 min
3. ``first_robust``: self-distilled on degraded train faces plus gender labels                   ~15-18 min
4. ``first_int8``: stored as int8, recalibrated (``build.quantize``)                              ~1-4 min
5. ``dlib_net.xml``: dlib's face-recognition network dumped as XML (needs g++ and pip)           ~3 min
6. ``dlib_finetuned.safetensors``: that network fine-tuned on the train labels                   ~10 min
7. the output folder: the descriptor network added, int8, with the blended heads, scored once    ~2 min

Every step writes into ``work_dir``; a step whose output exists is skipped, so an interrupted build
is resumed by running it again (the training resumes from its checkpoint). Each folder is written
under a ``.partial`` name and renamed when complete, so a crash never leaves a folder that looks done.
The validation part chooses and calibrates everything; the test part is read once, by the last step,
and not at all with ``validation_only``.

The descriptor fine-tuning is not bit-reproducible (torch's threaded CPU reductions): rerun, it gave
the same validation figures to four decimals, not the same bytes.

>>> BuildConfig().version, BuildConfig().training.backbone, BuildConfig().quantize_method
('17', 'lite1', 'percentile')
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

from faceattrs.build.descriptor_finetune import DescriptorFinetuneConfig
from faceattrs.build.quantize import CALIBRATION_FACES, DEFAULT_METHOD
from faceattrs.build.self_distill import SelfDistillConfig
from faceattrs.data.folders import FAIRFACE_DIR, FAIRFACE_SPLIT, UTKFACE_DIR, UTKFACE_SPLIT
from faceattrs.model_folder import MODEL_FILE, derived_metadata, read_model_folder, write_model_folder
from faceattrs.training.recipes import MultiTaskSettings

#: the script that dumps dlib's network (tools/ of the checkout: the build runs from one, beside its data)
DLIB_DUMP_SCRIPT = Path("tools/dlib_face_net/make_net_xml.sh")


@dataclass(frozen=True)
class BuildConfig:
    """Everything the build reads; the defaults build the shipped model (version 17's recipe)."""

    work_dir: Path = Path("runs/build")
    #: the finished model folder (default ``work_dir/model``); ``src/faceattrs/assets`` replaces the shipped one
    out: Path | None = None
    version: str = "17"
    data: Path = UTKFACE_DIR
    split: Path = UTKFACE_SPLIT
    #: FairFace's folder and split, read when the training settings ask for it (``training.fairface``)
    fairface_data: Path = FAIRFACE_DIR
    fairface_split: Path = FAIRFACE_SPLIT
    #: score the finished model on validation only (``validation.json``): a candidate, the test part unread
    validation_only: bool = False
    seed: int = 0
    training: MultiTaskSettings = field(default_factory=MultiTaskSettings)
    #: the age range's target coverage, fitted on validation
    coverage: float = 0.9
    #: step 3's settings; None leaves the step out (the int8 step then stores the exported network)
    self_distill: SelfDistillConfig | None = field(default_factory=SelfDistillConfig)
    quantize_method: str = DEFAULT_METHOD
    quantize_faces: int = CALIBRATION_FACES
    #: step 6's settings; None leaves out the second network (steps 5-7): the int8 first network ships
    descriptor_finetune: DescriptorFinetuneConfig | None = field(default_factory=DescriptorFinetuneConfig)
    #: how the descriptor network's int8 activation ranges are set
    descriptor_calibration: str = "percentile"

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
    from faceattrs.build import descriptor_finetune, descriptor_heads, export, quantize, self_distill
    from faceattrs.training.checkpoint import load_weights
    from faceattrs.training.engine import train
    from faceattrs.training.protocols import project_parts
    from faceattrs.training.recipes import multitask

    work = Path(config.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    recipe = multitask(**asdict(config.training))
    fairface = config.fairface_data if config.training.fairface else None
    parts = project_parts(recipe.input_size, config.data, config.split, fairface, config.fairface_split)
    times_file = work / "build_times.json"  # minutes per step, kept across resumed runs
    timings: dict[str, float] = json.loads(times_file.read_text()) if times_file.is_file() else {}
    run, first, robust, int8 = work / "multitask", work / "first", work / "first_robust", work / "first_int8"
    net_xml, finetuned = work / "dlib_net.xml", work / "dlib_finetuned.safetensors"

    if not (run / "model.safetensors").is_file():
        t0 = _step("1/7 train the first network", log)
        train(recipe, parts["train"], parts["val"], run, seed=config.seed, resume=True,
              extra_config={"protocol": "project", "split": str(config.split)})  # fmt: skip
        timings["train"] = _minutes(t0)
    if not (first / MODEL_FILE).is_file():
        t0 = _step("2/7 export and calibrate", log)
        run_config = json.loads((run / "config.json").read_text()) | {"version": f"{config.version}-first"}
        shipped = multitask(**(asdict(config.training) | {"pretrained": False}))
        model = load_weights(shipped.build_model(), run / "model.safetensors").eval()

        def write_first(folder: Path) -> None:
            export.ship(model, shipped, parts, run_config, folder, split_file=config.split, coverage=config.coverage)

        _into(first, write_first)
        timings["export"] = _minutes(t0)
    if config.self_distill is None:
        robust = first
    elif not (robust / MODEL_FILE).is_file():
        t0 = _step("3/7 self-distil on degraded faces", log)
        _into(robust, lambda folder: self_distill.self_distill_model_dir(
            first, folder, parts, f"{config.version}-first-robust", config.self_distill))  # fmt: skip
        timings["self_distill"] = _minutes(t0)
    if not (int8 / MODEL_FILE).is_file():
        t0 = _step("4/7 store as int8", log)
        _into(int8, lambda folder: quantize.quantize_model_dir(
            robust, folder, parts, version=f"{config.version}-first-int8",
            method=config.quantize_method, n_faces=config.quantize_faces))  # fmt: skip
        timings["quantize"] = _minutes(t0)
    second_network = config.descriptor_finetune is not None
    if second_network and not net_xml.is_file():
        t0 = _step("5/7 dump dlib's face-recognition network", log)
        partial = net_xml.with_name(net_xml.name + ".partial")
        subprocess.run(["bash", str(DLIB_DUMP_SCRIPT), str(partial)], check=True)
        partial.replace(net_xml)
        timings["dlib_net"] = _minutes(t0)
    if second_network and not finetuned.is_file():
        t0 = _step("6/7 fine-tune the descriptor network", log)
        network = descriptor_finetune.finetune(net_xml, parts["train"], config.descriptor_finetune)
        partial = finetuned.with_name(finetuned.name + ".partial")
        descriptor_finetune.save_finetuned(network, partial, config.descriptor_finetune, net_xml, recipe.input_size)
        partial.replace(finetuned)
        timings["finetune_descriptors"] = _minutes(t0)

    t0 = _step("7/7 add the descriptor heads and score" if second_network else "7/7 score", log)
    out = config.model_dir

    def write_final(folder: Path) -> None:
        if second_network:
            descriptor_heads.add_descriptor_heads(int8, net_xml, folder, parts, version=config.version, int8=True,
                                                  calibration_method=config.descriptor_calibration,
                                                  finetuned=finetuned)  # fmt: skip
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
