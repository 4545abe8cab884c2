"""Where every benchmark leaves its figures.

``results/NAME.json`` keeps the measurement for tests and tools; ``results/NAME.md`` is the table that
``update_readme.py`` copies into the ``<!-- results:NAME -->`` section of the README or docs/benchmarks.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def save_results(name: str, data: Any, markdown: str, folder: Path = RESULTS) -> None:
    """Write ``results/NAME.json`` and ``results/NAME.md`` (or into ``folder``) and print the Markdown.

    >>> save_results("example", {"faces_per_s": 220}, "| faces/s |\\n|---|\\n| 220 |\\n")  # doctest: +SKIP
    """
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(data, indent=1))
    (folder / f"{name}.md").write_text(markdown)
    print(markdown)
