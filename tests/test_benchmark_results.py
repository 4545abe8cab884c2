"""The figures the docs quote are current: measured on the shipped model and copied in.

A new model ships with new runs of the per-model benchmarks; these tests fail until they are rerun and
copied into the README and docs/benchmarks.md (``python benchmarks/update_readme.py``).
"""

import json
import re
from pathlib import Path

import pytest

from faceattrs.model_folder import model_identity

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: the benchmarks rerun for every model (docs/benchmarks.md): each names the model it measured
PER_MODEL = ("load_api", "models", "pipeline_speed", "portability", "robustness")


@pytest.mark.parametrize("name", PER_MODEL)
def test_results_were_measured_on_the_shipped_model(name):
    result = json.loads((RESULTS / f"{name}.json").read_text())
    assert result.get("model") == model_identity(), (
        f"benchmarks/results/{name}.json was not measured on the shipped model: rerun benchmarks/{name}.py"
    )


@pytest.mark.parametrize("document", ["README.md", "docs/benchmarks.md"])
def test_the_docs_quote_the_saved_results(document):
    text = (ROOT / document).read_text()
    sections = re.findall(r"<!-- results:(\w+) -->\n(.*?)<!-- /results:\1 -->", text, re.S)
    assert sections, f"{document} has no results sections"
    for name, section in sections:
        expected = f"{(RESULTS / f'{name}.md').read_text().strip()}\n\n(`python benchmarks/{name}.py`)\n"
        assert section == expected, f"run python benchmarks/update_readme.py ({name} in {document})"
