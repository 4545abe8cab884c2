"""Copy the Markdown tables in ``benchmarks/results/*.md`` into the marked sections of the docs.

Usage::

    python benchmarks/update_readme.py

A section ``<!-- results:NAME -->`` ... ``<!-- /results:NAME -->`` in the README or in
``docs/benchmarks.md`` (:data:`DOCUMENTS`) receives ``benchmarks/results/NAME.md``; sections whose
results file does not exist are left alone.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the files that quote benchmark results: the README's results table and the per-model benchmarks
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "benchmarks.md")


def main() -> None:
    for document in DOCUMENTS:
        text = document.read_text()
        for name in re.findall(r"<!-- results:(\w+) -->", text):
            source = ROOT / "benchmarks" / "results" / f"{name}.md"
            if source.exists():
                body = source.read_text().strip()
                # the section may still be empty: "<!-- results:x -->\n<!-- /results:x -->"
                pattern = re.compile(rf"(<!-- results:{name} -->\n).*?(<!-- /results:{name} -->)", re.S)
                text = pattern.sub(lambda m, b=body, n=name: f"{m[1]}{b}\n\n(`python benchmarks/{n}.py`)\n{m[2]}", text)
        document.write_text(text)


if __name__ == "__main__":
    main()
