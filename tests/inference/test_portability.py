"""The shipped model gives the same answers on x86 CPUs without VNNI.

onnxruntime picks its int8 kernels by CPU, and those for CPUs without VNNI saturate on 8-bit
weights (``benchmarks/portability.py`` explains and measures it). Here the faces of the test
photos, detected and aligned on this machine, go through the model natively and under QEMU's
emulation of such a CPU (``qemu-x86_64 -cpu Haswell``: AVX2, no AVX-512, no VNNI), and every
face's age, range and probabilities must agree. (The float detector's landmarks are not bit for
bit the same on both CPUs, so whole photos would mix in that smaller, expected difference.)
Skipped where QEMU's user-mode emulator is not installed (``apt-get install qemu-user``; CI installs it).
"""

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import IMAGES, SHIPPED

QEMU = shutil.which("qemu-x86_64")
PHOTOS = ("group_5.jpg", "astronaut.jpg", "tilted_25.jpg")
ANALYZE_CROPS = """
import json, sys
import numpy as np
from numpy._core._multiarray_umath import __cpu_features__
from faceattrs import Analyzer
analyzer = Analyzer(model_dir=sys.argv[1])
faces = [analyzer.analyze(crop, aligned=True)[0] for crop in np.load(sys.argv[2])]
rows = [[f.age, f.age_low, f.age_high, f.gender_prob if f.gender == "male" else 1 - f.gender_prob,
         *f.ethnicity_probs.values()] for f in faces]
print(json.dumps({"vnni": bool(__cpu_features__["AVX512VNNI"]), "faces": rows}))
"""


def aligned_crops(model_dir: Path) -> np.ndarray:
    from faceattrs import Analyzer

    analyzer = Analyzer(model_dir=model_dir, keep_crops=True)
    return np.stack([face.crop for name in PHOTOS for face in analyzer.analyze(IMAGES / name)])


def analyze(model_dir: Path, crops_file: Path, prefix: list[str]) -> dict:
    command = [*prefix, sys.executable, "-c", ANALYZE_CROPS, str(model_dir), str(crops_file)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def outputs_on_both_cpus(model_dir: Path, work: Path) -> tuple[np.ndarray, np.ndarray]:
    crops_file = work / "crops.npy"
    np.save(crops_file, aligned_crops(model_dir))
    native = analyze(model_dir, crops_file, [])
    emulated = analyze(model_dir, crops_file, [QEMU, "-cpu", "Haswell"])
    assert not emulated["vnni"], "the emulated CPU must lack VNNI"
    return np.array(native["faces"]), np.array(emulated["faces"])


@pytest.mark.skipif(platform.machine() != "x86_64", reason="onnxruntime's x86 kernels: an x86_64 machine only")
@pytest.mark.skipif(QEMU is None, reason="qemu-user not installed (apt-get install qemu-user)")
def test_the_shipped_model_answers_the_same_on_a_cpu_without_vnni(tmp_path):
    native, emulated = outputs_on_both_cpus(SHIPPED, tmp_path)
    assert native.shape == (7, 3 + 1 + 5)  # 5 + 1 + 1 faces
    np.testing.assert_allclose(emulated, native, atol=1e-5)
