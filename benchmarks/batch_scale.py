"""Files/s and faces/s of ``faceattrs predict``'s two engines on the same photos, and a projection for a cluster.

Photos: the first ``--files`` (2,000) photos of FairFace's validation part (``splits/fairface_v1.csv``), web
photos of 224 px, most with one face. Each configuration goes through
:func:`faceattrs.batch.run.predict_files`, the path the CLI takes, writing Parquet shards into a temporary
folder, one after the other in this process:

* local engine, onnxruntime threads 1 and 2 (one process; the detector runs on one thread either way);
* Ray engine, 1 and 2 workers (Ray started in this process once, before, and its start-up timed apart).

Then the cost of each stage per file, from the local engine on one thread: decode + detect + align
(:meth:`Analyzer.locate`) per file and the model (:meth:`Analyzer.finish`) per face; and the driver's
writing rate (Parquet rows/s), the one part of a Ray run that does not spread over a cluster. The
projection for N nodes of C cores follows from these. The rows of every configuration are compared with
the first's.

Usage::

    python benchmarks/batch_scale.py [--files 2000]

Writes ``benchmarks/results/batch_scale.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import csv
import platform
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from faceattrs.batch.outputs import ShardedOutput
from faceattrs.batch.run import DEFAULT_SHARD_FILES, local_engine, predict_files
from faceattrs.data.folders import FAIRFACE_DIR, FAIRFACE_SPLIT
from faceattrs.inference.analyzer import Analyzer
from faceattrs.inference.records import columns
from faceattrs.model_folder import model_identity
from results_io import save_results


def validation_photos(n: int) -> list[Path]:
    with open(FAIRFACE_SPLIT, newline="") as f:
        files = [row["file"] for row in csv.DictReader(f) if row["part"] == "val"]
    return [FAIRFACE_DIR / name for name in files[:n]]


def timed_run(photos: list[Path], engine, out: Path, cols) -> tuple[dict, object]:
    """Seconds in all and to the first file's rows (an engine's start-up), the counts, and the table written."""
    first: list[float] = []

    def watched(paths):
        for result in engine(paths):
            first.append(first[0] if first else time.perf_counter() - t0)
            yield result

    t0 = time.perf_counter()
    with ShardedOutput(out, "parquet", cols) as output:
        summary = predict_files(photos, watched, output, shard_files=DEFAULT_SHARD_FILES, progress=False)
    seconds = time.perf_counter() - t0
    counts = {"files": summary.files, "faces": summary.faces, "errors": summary.error}
    return counts | {"seconds": seconds, "first_file_s": first[0]}, pq.read_table(out)


def stage_costs(photos: list[Path]) -> dict[str, float]:
    """Seconds per file of decode + detect + align, and per face of the model, on one thread."""
    analyzer = Analyzer(threads=1)
    t0 = time.perf_counter()
    located = [analyzer.locate(str(p)) for p in photos]
    locate_s = time.perf_counter() - t0
    faces = sum(len(image.candidates) for image in located)
    t0 = time.perf_counter()
    for start in range(0, len(located), 32):
        list(analyzer.finish(located[start : start + 32]))
    finish_s = time.perf_counter() - t0
    return {"locate_s_per_file": locate_s / len(photos), "model_s_per_face": finish_s / max(faces, 1),
            "faces_per_file": faces / len(photos)}  # fmt: skip


def driver_rows_per_s(cols, rows: int = 100_000) -> float:
    """Rows/s the driver writes into Parquet shards (what bounds a cluster whose workers keep up)."""
    row = {c: 0.5 for c in cols} | {"path": "photos/2024/01/IMG_0001.jpg", "face": 1, "status": "ok",
                                    "gender": "female", "ethnicity": "white", "error": ""}  # fmt: skip
    shard = [dict(row) for _ in range(5_000)]
    with tempfile.TemporaryDirectory() as tmp, ShardedOutput(Path(tmp) / "w.parquet", "parquet", cols) as output:
        t0 = time.perf_counter()
        for i in range(rows // len(shard)):
            output.write_shard(shard, [(f"{i}", 0, 0)])
        return rows / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    photos = validation_photos(args.files)
    cols = columns(Analyzer().model.ethnicities)
    runs: dict[str, dict] = {}
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        for threads in (1, 2):
            engine = local_engine(Analyzer(threads=threads))
            counts, table = timed_run(photos, engine, Path(tmp) / f"local{threads}.parquet", cols)
            reference = table if reference is None else reference
            name = f"local, {threads} thread{'s' if threads > 1 else ''}"
            runs[name] = counts | {"same_rows": table.equals(reference)}
            print(name, runs[name], flush=True)
        import ray

        from faceattrs.batch.ray_engine import _start, ray_engine

        t0 = time.perf_counter()
        _start(None)
        ray_start = time.perf_counter() - t0
        for workers in (1, 2):
            out = Path(tmp) / f"ray{workers}.parquet"
            counts, table = timed_run(photos, ray_engine(workers=workers), out, cols)
            name = f"Ray, {workers} worker{'s' if workers > 1 else ''}"
            runs[name] = counts | {"same_rows": table.equals(reference)}
            print(name, runs[name], flush=True)
        ray.shutdown()
    costs = stage_costs(photos[:300])
    write_rate = driver_rows_per_s(cols)
    for run in runs.values():
        run["files_per_s"] = run["files"] / run["seconds"]
        run["faces_per_s"] = run["faces"] / run["seconds"]
    local1, ray1 = runs["local, 1 thread"], runs["Ray, 1 worker"]
    cpu_s_per_file = costs["locate_s_per_file"] + costs["model_s_per_face"] * costs["faces_per_file"]
    report = {
        "model": model_identity(),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        "photos": f"FairFace validation, first {len(photos)}",
        "mean_file_kb": statistics.mean(p.stat().st_size for p in photos) / 1024,
        "runs": runs,
        "ray_start_s": ray_start,
        # after its first rows: Ray's start-up per run (workers, actors, the model loaded) is counted apart
        "ray_overhead_ms_per_file": 1000
        * ((ray1["seconds"] - ray1["first_file_s"]) - (local1["seconds"] - local1["first_file_s"]))
        / max(local1["files"] - 1, 1),
        "stage_costs": costs,
        "cpu_s_per_file": cpu_s_per_file,
        "driver_parquet_rows_per_s": write_rate,
        "median_files_per_s": statistics.median(r["files_per_s"] for r in runs.values()),
    }
    save_results("batch_scale", report, markdown(report))


def markdown(r: dict) -> str:
    lines = [
        "| engine | files/s | faces/s | seconds | to the first rows, s | rows equal the first run's |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, run in r["runs"].items():
        lines.append(f"| {name} | {run['files_per_s']:.1f} | {run['faces_per_s']:.1f} | {run['seconds']:.0f} | "
                     f"{run['first_file_s']:.1f} | "
                     f"{'yes' if run['same_rows'] else 'no'} |")  # fmt: skip
    c = r["stage_costs"]
    per_core = 1 / r["cpu_s_per_file"]
    faces_per_file = c["faces_per_file"]
    driver_files = r["driver_parquet_rows_per_s"] / max(faces_per_file, 1)
    lines += [
        "",
        f"{r['photos']} photos ({faces_per_file:.2f} faces a photo), {r['machine']}, one run each, one after the "
        f"other. Ray started in {r['ray_start_s']:.1f} s (not in the times above); its overhead against the "
        f"local engine on one core, past the first rows: {r['ray_overhead_ms_per_file']:+.1f} ms a file.",
        "",
        f"Per file on one core: decode + detect + align {1000 * c['locate_s_per_file']:.0f} ms, the model "
        f"{1000 * c['model_s_per_face']:.0f} ms a face: about {per_core:.0f} files/s per core, "
        f"{100 * c['locate_s_per_file'] / r['cpu_s_per_file']:.0f}% of it before the model. The driver writes "
        f"{r['driver_parquet_rows_per_s']:,.0f} Parquet rows/s (about {driver_files:,.0f} files/s).",
        "",
        "Projection for N nodes of C cores (Ray, workers = N x C): about "
        f"{per_core:.0f} x N x C files/s while the workers are the bound, up to the driver's "
        f"{driver_files:,.0f} files/s, and as long as storage delivers the photos (these average "
        f"{r['mean_file_kb']:.0f} KB: {per_core * r['mean_file_kb'] / 1024:.1f} MB/s per core; larger photos cost more "
        f"to decode and detect). 10 nodes x 16 cores: about {per_core * 160:,.0f} files/s, "
        f"{1e6 / (per_core * 160) / 60:.0f} minutes a million photos.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
