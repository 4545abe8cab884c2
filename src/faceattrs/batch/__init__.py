"""Prediction over many photos: outputs written shard by shard (CSV, JSON lines, Parquet), ``--resume``, and two
engines that produce the same rows, the local one (one process, :class:`faceattrs.Analyzer`) and Ray Data's
(many processes or machines). ``faceattrs predict`` is the front end.

>>> from faceattrs.batch.outputs import output_format
>>> output_format(None, Path("faces.parquet")), output_format("jsonl", None)
('parquet', 'jsonl')
"""

from pathlib import Path  # noqa: F401  (the doctest's Path)
