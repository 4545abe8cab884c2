"""Load test of the HTTP API on loopback: latency, throughput, errors and memory.

For each server stack (event loop / HTTP parser), one after the other in the
same run: starts ``faceattrs serve`` on 127.0.0.1, measures the single-request
latency (one client, sequential), then drives it with N concurrent clients
until a request count or a time limit is reached (both bounded), and reports
requests/s, p50/p95/p99 latency, errors, the server's RSS before and after,
and the CPU time per request of the server and of the load generator (they
share the cores).

Why p95 cannot drop far below ``clients / cores`` times the single-request
latency here: N clients that each wait for their answer keep N requests in
the system, so by Little's law the mean latency is N / throughput, and the
throughput of CPU-bound work is at most cores / (CPU seconds per request).
Hence mean latency >= N x CPU-per-request / cores. The report prints that
floor next to the measured latencies, divided by the single-request latency.

Usage::

    python benchmarks/load_api.py [--clients 8] [--requests 2000] [--max-seconds 240] [--workers 2]
        [--stacks uvloop/httptools asyncio/h11] [--sweep 2 4]

``--sweep`` adds runs of the first stack at other client counts.

Writes ``benchmarks/results/load_api.json`` and ``.md``. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
import numpy as np

from faceattrs.model_folder import model_identity
from results_io import save_results

IMAGE = Path(__file__).resolve().parents[1] / "tests" / "images" / "astronaut.jpg"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def drive(url: str, clients: int, total: int, max_seconds: float, data: bytes):
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sent = 0
    deadline = time.perf_counter() + max_seconds

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal sent
        while sent < total and time.perf_counter() < deadline:
            sent += 1
            t0 = time.perf_counter()
            r = await http.post(f"{url}/v1/analyze", files={"file": ("a.jpg", data, "image/jpeg")})
            latencies.append(time.perf_counter() - t0)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return latencies, statuses, time.perf_counter() - start


def measure(args: argparse.Namespace, stack: str, clients: int) -> dict:
    loop, http = stack.split("/")
    port = free_port()
    env = {**os.environ, "FACEATTRS_API_QUEUE_SIZE": "16"}
    server = subprocess.Popen(
        [sys.executable, "-m", "faceattrs.cli", "serve", "--port", str(port), "--workers", str(args.workers),
         "--no-access-log", "--loop", loop, "--http", http],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        data = IMAGE.read_bytes()
        single, _, _ = asyncio.run(drive(url, 1, 5, 60, data))  # warm-up
        single, _, _ = asyncio.run(drive(url, 1, 50, 60, data))
        rss_before = rss_mb(server.pid)
        cpu_before, server_cpu_before = time.process_time(), cpu_seconds(server.pid)
        latencies, statuses, seconds = asyncio.run(drive(url, clients, args.requests, args.max_seconds, data))
        client_cpu = time.process_time() - cpu_before
        server_cpu = cpu_seconds(server.pid) - server_cpu_before
        rss_after = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=20)
    lat = np.array(latencies) * 1000
    single_ms = statistics.median(single) * 1000
    n = max(1, len(latencies))
    cpu_ms = 1000 * (server_cpu + client_cpu) / n
    floor_ms = clients * cpu_ms / (os.cpu_count() or 1)  # Little's law with the cores fully busy
    return {
        "stack": stack,
        "clients": clients,
        "single_request_median_ms": single_ms,
        "requests": len(latencies),
        "seconds": seconds,
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
        "p95_over_single": float(np.percentile(lat, 95)) / single_ms,
        "statuses": {str(k): v for k, v in statuses.items()},
        "errors": sum(v for k, v in statuses.items() if k != 200),
        "rss_mb_before": rss_before,
        "rss_mb_after": rss_after,
        "rss_growth_mb": rss_after - rss_before,
        "client_cpu_ms_per_request": 1000 * client_cpu / n,
        "server_cpu_ms_per_request": 1000 * server_cpu / n,
        "mean_ms": float(lat.mean()),
        "mean_latency_floor_ms": floor_ms,
        "floor_over_single": floor_ms / single_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=240)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stacks", nargs="+", default=["uvloop/httptools", "asyncio/h11"], help="loop/http pairs")
    parser.add_argument("--sweep", nargs="*", type=int, default=[], help="more client counts, first stack only")
    args = parser.parse_args()
    runs = [measure(args, stack, args.clients) for stack in args.stacks]
    runs += [measure(args, args.stacks[0], clients) for clients in args.sweep]
    result = {
        "model": model_identity(),
        "image": f"{IMAGE.name} (512x512, one face)",
        "server_workers": args.workers,
        "cpu_cores": os.cpu_count(),
        "clients": args.clients,
        "runs": runs,
    }
    md = (
        "| server (event loop / HTTP parser) | clients | requests | req/s | p50 ms | p95 ms | p99 ms | "
        "single-request ms | p95 / single | errors | RSS before → after (MB) | CPU ms/request (server + load "
        "generator) | mean-latency floor / single |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    for r in runs:
        md += (
            f"| {r['stack']} | {r['clients']} | {r['requests']} | {r['requests_per_s']:.1f} | {r['p50_ms']:.0f} | "
            f"{r['p95_ms']:.0f} | {r['p99_ms']:.0f} | {r['single_request_median_ms']:.1f} | "
            f"{r['p95_over_single']:.2f}× | {r['errors']} | "
            f"{r['rss_mb_before']:.0f} → {r['rss_mb_after']:.0f} ({r['rss_growth_mb']:+.0f}) | "
            f"{r['server_cpu_ms_per_request']:.1f} + {r['client_cpu_ms_per_request']:.1f} | "
            f"{r['floor_over_single']:.2f}× |\n"
        )
    md += (
        f"\n{result['image']}; {args.workers} inference worker(s); {os.cpu_count()} CPU cores shared by server "
        "and load generator; loopback. The first stack is what `faceattrs serve` picks when uvloop and httptools "
        "are installed (dependencies). Floor: by Little's law, clients x CPU per request / cores is the lowest "
        "mean latency CPU-bound work can reach. "
        f"Arguments: `{' '.join(sys.argv[1:]) or '(defaults)'}`.\n"
    )
    save_results("load_api", result, md)


if __name__ == "__main__":
    main()
