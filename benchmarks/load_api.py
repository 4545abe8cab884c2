"""Load test of the HTTP API on loopback: latency, throughput, errors and memory.

For each server stack (event loop / HTTP parser), one after the other in the
same run: starts ``faceattrs serve`` on 127.0.0.1, measures the single-request
latency (one client, sequential), then drives it with N concurrent clients
until a request count or a time limit is reached (both bounded), and reports
requests/s, p50/p95/p99 latency, errors, the server's RSS before and after,
and the CPU the load generator itself used (it shares the cores with the
server).

Usage::

    python benchmarks/load_api.py [--clients 8] [--requests 2000] [--max-seconds 240] [--workers 2]
        [--stacks uvloop/httptools asyncio/h11]

Writes ``benchmarks/results/load_api.json`` and ``.md``. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

IMAGE = Path(__file__).resolve().parents[1] / "tests" / "images" / "astronaut.jpg"
RESULTS = Path(__file__).parent / "results"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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


def measure(args: argparse.Namespace, stack: str) -> dict:
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
        cpu_before = time.process_time()
        latencies, statuses, seconds = asyncio.run(drive(url, args.clients, args.requests, args.max_seconds, data))
        client_cpu = time.process_time() - cpu_before
        rss_after = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=20)
    lat = np.array(latencies) * 1000
    single_ms = statistics.median(single) * 1000
    return {
        "stack": stack,
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
        "client_cpu_ms_per_request": 1000 * client_cpu / max(1, len(latencies)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=240)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stacks", nargs="+", default=["uvloop/httptools", "asyncio/h11"], help="loop/http pairs")
    args = parser.parse_args()
    runs = [measure(args, stack) for stack in args.stacks]
    result = {
        "image": f"{IMAGE.name} (512x512, one face)",
        "server_workers": args.workers,
        "cpu_cores": os.cpu_count(),
        "clients": args.clients,
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load_api.json").write_text(json.dumps(result, indent=1))
    md = (
        "| server (event loop / HTTP parser) | requests | req/s | p50 ms | p95 ms | p99 ms | single-request ms | "
        "p95 / single | errors | RSS before → after (MB) | load generator CPU ms/request |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    for r in runs:
        md += (
            f"| {r['stack']} | {r['requests']} | {r['requests_per_s']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
            f"{r['p99_ms']:.0f} | {r['single_request_median_ms']:.1f} | {r['p95_over_single']:.2f}× | {r['errors']} | "
            f"{r['rss_mb_before']:.0f} → {r['rss_mb_after']:.0f} ({r['rss_growth_mb']:+.0f}) | "
            f"{r['client_cpu_ms_per_request']:.1f} |\n"
        )
    md += (
        f"\n{result['image']}; {args.clients} concurrent clients; {args.workers} inference worker(s); "
        f"{os.cpu_count()} CPU cores shared by server and load generator; loopback. "
        "The first stack is what `faceattrs serve` picks when uvloop and httptools are installed (dependencies).\n"
    )
    (RESULTS / "load_api.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
