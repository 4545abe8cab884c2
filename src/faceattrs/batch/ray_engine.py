"""The Ray Data engine of ``faceattrs predict --engine ray``: the same rows as the local engine, from many
processes, or many machines when ``RAY_ADDRESS`` (or ``--ray-address``) names a cluster.

The pipeline, in the order of :mod:`faceattrs.inference.analyzer`'s two halves:

1. ``map_batches(_locate)``, stateless tasks: decode each photo, detect, align and measure its faces
   (:meth:`Analyzer.locate`). These run where the files are read and take most of the CPU time.
2. ``map_batches(_AttributePredictor)``, an actor pool: each actor loads the ONNX model once and runs it over
   the faces of many photos at a time (:meth:`Analyzer.finish`), then turns each result into its rows.

When the two stages fit the same resources, Ray fuses them into one actor stage (each actor then decodes,
detects and runs the model on its own blocks, and no crop crosses the object store). The driver streams the
rows back in input order (``preserve_order``) and writes them itself, so the output formats, the shards and
``--resume`` are those of the local engine. Only rows (about 200 bytes a face) come back to the driver; photos
and crops stay on the workers. Ray is an optional extra: ``pip install faceattrs[ray]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from faceattrs.batch.run import Engine, FileRows

#: Photos per detection task, and photos per model batch of an actor (the local engine batches 32 faces)
LOCATE_BATCH = 16
PREDICT_BATCH = 32


@lru_cache(maxsize=2)
def _analyzer(model_dir: str | None) -> Any:
    """One Analyzer per worker process: a task reuses the detector that an earlier task in its process loaded."""
    from faceattrs.inference.analyzer import Analyzer

    return Analyzer(Path(model_dir) if model_dir else None, threads=1)


def _locate(batch: dict[str, np.ndarray], model_dir: str | None, aligned: bool) -> dict[str, np.ndarray]:
    analyzer = _analyzer(model_dir)
    located = np.empty(len(batch["path"]), dtype=object)
    located[:] = [analyzer.locate(str(path), aligned) for path in batch["path"]]
    return {"index": batch["index"], "located": located}


class _AttributePredictor:
    """An actor of the pool: the attribute model, loaded once. ``model_dir`` is set on a subclass made per run, so
    that the actor takes no constructor arguments (Ray warns about those when an actor may be restarted)."""

    model_dir: str | None = None

    def __init__(self) -> None:
        self.analyzer = _analyzer(self.model_dir)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from faceattrs.inference.records import rows_for

        ethnicities = self.analyzer.model.ethnicities
        results = self.analyzer.finish(list(batch["located"]))
        encoded = [
            json.dumps({"status": r.status, "faces": len(r.faces), "rows": rows_for(r, ethnicities)}) for r in results
        ]
        return {"index": batch["index"], "result": np.array(encoded, dtype=object)}


def ray_engine(
    model_dir: Path | None = None,
    aligned: bool = False,
    workers: int | None = None,
    address: str | None = None,
) -> Engine:
    """An engine that runs on Ray: ``address`` None starts Ray in this process unless ``RAY_ADDRESS`` names a
    cluster. ``workers``: the detection tasks at once and the model actors (default: the cluster's CPUs).

    >>> rows = ray_engine(workers=2)(["photos/a.jpg"])  # doctest: +SKIP
    """
    model = str(model_dir) if model_dir is not None else None

    def run(paths: Sequence[str]) -> Iterator[FileRows]:
        if not paths:
            return
        ray = _start(address)
        data = ray.data
        size = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        items = data.from_items(
            [{"index": i, "path": p} for i, p in enumerate(paths)],
            override_num_blocks=max(1, min(len(paths) // LOCATE_BATCH, 10_000)),
        )
        located = items.map_batches(
            _locate,
            fn_kwargs={"model_dir": model, "aligned": aligned},
            batch_size=LOCATE_BATCH,
            batch_format="numpy",
            num_cpus=1,
            compute=data.TaskPoolStrategy(size=size),
        )
        predictor = type("AttributePredictor", (_AttributePredictor,), {"model_dir": model})
        predicted = located.map_batches(
            predictor,
            batch_size=PREDICT_BATCH,
            batch_format="numpy",
            num_cpus=1,
            compute=data.ActorPoolStrategy(size=size),
        )
        expected = 0
        for batch in predicted.iter_batches(batch_size=None, batch_format="numpy"):
            for index, encoded in zip(batch["index"], batch["result"], strict=True):
                if int(index) != expected:  # preserve_order is what makes the rows line up with the paths
                    raise RuntimeError(f"Ray returned file {index} where {expected} was expected")
                expected += 1
                yield FileRows(**json.loads(encoded))

    return run


def _start(address: str | None) -> Any:
    """Ray, started (or joined) once per process, with ordered output and no progress bars of its own."""
    import logging
    import os
    import warnings

    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # Ray's C++ core logs notes for Ray's developers
    import ray

    # a folder smaller than the pool: Ray warns that some actors have nothing to do
    warnings.filterwarnings("ignore", message="The minimum number of concurrent actors")

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notes on progress bars and execution plans
    if not ray.is_initialized():
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=False,
        )
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows in input order, as the local engine writes them
    context.enable_progress_bars = False  # faceattrs' own bar counts files and faces
    context.print_on_execution_start = False
    return ray
