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

Then the hostile mix (``--hostile-seconds``, 0 skips it), on the first stack with the settings
``faceattrs serve`` ships: a few normal clients run alone, then as long again beside clients
that send bodies a kilobyte at a time, headers a byte at a time or nothing at all, progressive
JPEGs of 120,000 scans ("scan bombs"), 49-megapixel PNGs of a few hundred KB with
``?aligned=true`` ("aligned bombs") and 19 MiB uploads of junk. It reports the normal requests'
latency alone and beside the mix, the server's RSS (sampled every 0.1 s) and every answer by kind;
the goals are p95 of the normal requests at most 2x their p95 alone, bounded RSS, and no 5xx but
503 and 504.

Usage::

    python benchmarks/load_api.py [--clients 8] [--requests 2000] [--max-seconds 240] [--workers 2]
        [--stacks uvloop/httptools asyncio/h11] [--sweep 2 4] [--hostile-seconds 60] [--normal-clients 2]

``--sweep`` adds runs of the first stack at other client counts.

Writes ``benchmarks/results/load_api.json`` and ``.md``. Traffic goes to 127.0.0.1 only, and every
loop stops by itself (request counts and time limits).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
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


def start_server(args: argparse.Namespace, stack: str, env: dict, stderr) -> tuple[subprocess.Popen, int, str]:
    """``faceattrs serve`` on a free loopback port with the ``loop/http`` stack; returns once /healthz answers."""
    loop, http = stack.split("/")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "faceattrs.cli", "serve", "--port", str(port), "--workers", str(args.workers),
         "--no-access-log", "--loop", loop, "--http", http],
        stdout=subprocess.DEVNULL, stderr=stderr, env=env, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    return server, port, url


def measure(args: argparse.Namespace, stack: str, clients: int) -> dict:
    env = {**os.environ, "FACEATTRS_API_QUEUE_SIZE": "16"}
    server, _, url = start_server(args, stack, env, stderr=subprocess.DEVNULL)
    try:
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


# --- the hostile mix ---------------------------------------------------------------------------


def scan_bomb(scans: int = 120_000) -> bytes:
    """A flat progressive JPEG whose smallest scan is repeated: about 1.4 MB, seconds of libjpeg's time if decoded."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (2000, 2000), (120, 90, 200)).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    pos, found = 2, []
    while data[pos + 1] != 0xD9:  # every scan: its header and its entropy-coded data, up to the next marker
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if data[pos + 1] == 0xDA:
            while data[end] != 0xFF or data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                end += 1
            found.append((pos, end))
        pos = end
    start, end = min(found, key=lambda scan: scan[1] - scan[0])
    return data[:end] + data[start:end] * scans + data[end:]


def aligned_bomb() -> bytes:
    """A 7000 x 7000 (49 MP) PNG of a flat face-coloured ellipse: a few hundred KB."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (7000, 7000), (120, 100, 90))
    ImageDraw.Draw(image).ellipse([1500, 1000, 5500, 6000], fill=(200, 160, 140))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


class Tally:
    """Answers per kind of client, and the latencies of the normal requests."""

    def __init__(self) -> None:
        self.statuses: dict[str, dict[str, int]] = {}
        self.latencies: list[float] = []

    def count(self, kind: str, status: int | str) -> None:
        per_kind = self.statuses.setdefault(kind, {})
        per_kind[str(status)] = per_kind.get(str(status), 0) + 1


async def raw_status(reader: asyncio.StreamReader, timeout: float) -> int | str:
    """The status of the server's answer on a raw connection, or why there is none."""
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    except TimeoutError:
        return "no answer"
    except ConnectionError:
        return "reset"
    return int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else "closed"


async def slow_body(port: int, tally: Tally, deadline: float) -> None:
    """Announce a 1 MB upload, then send 1 KB every half second, until the server answers; again."""
    while time.perf_counter() < deadline:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                     b"Content-Length: 1000000\r\n\r\n")  # fmt: skip
        # past the deadline it stops sending but waits for the answer, which the body timeout (30 s) brings
        answer = asyncio.ensure_future(raw_status(reader, deadline - time.perf_counter() + 40))
        with contextlib.suppress(ConnectionError):
            while not answer.done() and time.perf_counter() < deadline:
                writer.write(b"\xff" * 1024)
                await writer.drain()
                await asyncio.sleep(0.5)
        tally.count("slow body", await answer)
        writer.close()


async def slow_head(port: int, tally: Tally, deadline: float, idle: bool) -> None:
    """Send a request's head a byte a second (or nothing at all), until the server answers; again."""
    while time.perf_counter() < deadline:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = asyncio.ensure_future(raw_status(reader, deadline - time.perf_counter() + 15))
        head = b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100
        with contextlib.suppress(ConnectionError):
            for byte in [] if idle else head:
                if answer.done() or time.perf_counter() > deadline:
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(1.0)
        tally.count("idle connection" if idle else "slow head", await answer)
        writer.close()


async def poster(url: str, tally: Tally, deadline: float, kind: str, data: bytes, pause: float, **params) -> None:
    """POST ``data`` again and again (``pause`` seconds apart) until ``deadline``; normal requests are timed."""
    async with httpx.AsyncClient(timeout=120) as http:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                r = await http.post(f"{url}/v1/analyze", params=params, files={"file": ("a.jpg", data, "image/jpeg")})
                status: int | str = r.status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            if kind == "normal" and status == 200:
                tally.latencies.append(time.perf_counter() - t0)
            tally.count(kind, status)
            await asyncio.sleep(pause)


async def sample_rss(pid: int, deadline: float, into: list[float]) -> None:
    while time.perf_counter() < deadline:
        into.append(rss_mb(pid))
        await asyncio.sleep(0.1)


async def hostile_actors(url: str, port: int, seconds: float) -> dict[str, dict[str, int]]:
    """Every kind of hostile client for ``seconds``; their answers by kind."""
    tally = Tally()
    bomb, big, junk = scan_bomb(), aligned_bomb(), os.urandom(19 * 1024 * 1024)
    deadline = time.perf_counter() + seconds
    await asyncio.gather(
        *[slow_body(port, tally, deadline) for _ in range(8)],
        *[slow_head(port, tally, deadline, idle=False) for _ in range(2)],
        *[slow_head(port, tally, deadline, idle=True) for _ in range(2)],
        poster(url, tally, deadline, "scan bomb", bomb, 0.25),
        poster(url, tally, deadline, "aligned bomb", big, 1.0, aligned="true"),
        *[poster(url, tally, deadline, "19 MiB junk", junk, 1.0) for _ in range(2)],
    )
    return tally.statuses


def run_hostile_actors(url: str, port: int, seconds: float) -> dict[str, dict[str, int]]:
    return asyncio.run(hostile_actors(url, port, seconds))


async def phase(url: str, port: int, pid: int, seconds: float, normal_clients: int, hostile: bool):
    """The normal clients for ``seconds``, alone or beside the hostile ones (in another process, so that their
    uploads never hold up the normal clients' event loop; the two processes share the cores with the server)."""
    tally, rss = Tally(), []
    hostile_statuses = None
    if hostile:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"))
        hostile_statuses = pool.submit(run_hostile_actors, url, port, seconds + 3)
        await asyncio.sleep(3)  # the hostile process starts and makes its files
    deadline = time.perf_counter() + seconds
    image = IMAGE.read_bytes()
    tasks = [poster(url, tally, deadline, "normal", image, 0.0) for _ in range(normal_clients)]
    await asyncio.gather(sample_rss(pid, deadline, rss), *tasks)
    if hostile_statuses is not None:
        tally.statuses |= await asyncio.wrap_future(hostile_statuses)
        pool.shutdown()
    lat = np.array(tally.latencies) * 1000
    return {
        "seconds": seconds,
        "normal_requests": len(lat),
        "normal_p50_ms": float(np.percentile(lat, 50)),
        "normal_p95_ms": float(np.percentile(lat, 95)),
        "normal_p99_ms": float(np.percentile(lat, 99)),
        "statuses": tally.statuses,
        "server_5xx_other_than_503_504": sum(
            n for per in tally.statuses.values() for k, n in per.items() if k[0] == "5" and k not in ("503", "504")
        ),
        "rss_mb_max": max(rss),
    }


def hostile_mix(args: argparse.Namespace, stack: str) -> dict:
    """The normal clients alone, then beside the hostile mix, on one server with the shipped settings."""
    server, port, url = start_server(args, stack, dict(os.environ), stderr=subprocess.PIPE)
    try:
        asyncio.run(drive(url, 1, 5, 60, IMAGE.read_bytes()))  # warm-up
        rss_before = rss_mb(server.pid)
        alone = asyncio.run(phase(url, port, server.pid, args.hostile_seconds, args.normal_clients, hostile=False))
        mixed = asyncio.run(phase(url, port, server.pid, args.hostile_seconds, args.normal_clients, hostile=True))
        time.sleep(2)
        rss_after = rss_mb(server.pid)
    finally:
        server.terminate()
        log = server.communicate(timeout=20)[1]
    return {
        "stack": stack,
        "normal_clients": args.normal_clients,
        "alone": alone,
        "with_hostile_mix": mixed,
        "p95_ratio": mixed["normal_p95_ms"] / alone["normal_p95_ms"],
        "rss_mb_before": rss_before,
        "rss_mb_after": rss_after,
        "server_log_tracebacks": log.count("Traceback"),
        "server_log_lines": len(log.splitlines()),
    }


def hostile_markdown(h: dict) -> str:
    a, m = h["alone"], h["with_hostile_mix"]
    kinds = ", ".join(
        f"{kind}: " + " ".join(f"{n}× {status}" for status, n in sorted(per.items()))
        for kind, per in m["statuses"].items()
    )
    return (
        f"\n**Hostile mix** ({h['stack']}, `faceattrs serve`'s settings, {h['normal_clients']} normal clients, "
        f"{m['seconds']:.0f} s alone then {m['seconds']:.0f} s beside the mix):\n\n"
        "| normal requests | requests | p50 ms | p95 ms | p99 ms | server RSS max (MB) |\n|---|---|---|---|---|---|\n"
        f"| alone | {a['normal_requests']} | {a['normal_p50_ms']:.0f} | {a['normal_p95_ms']:.0f} | "
        f"{a['normal_p99_ms']:.0f} | {a['rss_mb_max']:.0f} |\n"
        f"| beside the mix | {m['normal_requests']} | {m['normal_p50_ms']:.0f} | {m['normal_p95_ms']:.0f} | "
        f"{m['normal_p99_ms']:.0f} | {m['rss_mb_max']:.0f} |\n\n"
        f"p95 beside the mix / alone: {h['p95_ratio']:.2f}× (goal ≤ 2×); RSS {h['rss_mb_before']:.0f} MB before, "
        f"{m['rss_mb_max']:.0f} MB at most, {h['rss_mb_after']:.0f} MB after; 5xx other than 503/504: "
        f"{m['server_5xx_other_than_503_504']}; tracebacks in the server's log: {h['server_log_tracebacks']}. "
        f"Answers by kind: {kinds}. The mix: 8 clients sending a 1 MB body 1 KB per 0.5 s, 2 sending a request's "
        "head a byte a second, 2 connecting and sending nothing, 1 posting a 120,000-scan JPEG every 0.25 s, 1 "
        "posting a 49-MP PNG with `?aligned=true` every second, 2 posting 19 MiB of junk every second; in a process "
        "of their own.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=240)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stacks", nargs="+", default=["uvloop/httptools", "asyncio/h11"], help="loop/http pairs")
    parser.add_argument("--sweep", nargs="*", type=int, default=[], help="more client counts, first stack only")
    parser.add_argument("--hostile-seconds", type=float, default=60, help="length of each hostile-mix phase (0: none)")
    parser.add_argument("--normal-clients", type=int, default=2, help="normal clients in the hostile-mix phases")
    args = parser.parse_args()
    runs = [measure(args, stack, args.clients) for stack in args.stacks]
    runs += [measure(args, args.stacks[0], clients) for clients in args.sweep]
    hostile = hostile_mix(args, args.stacks[0]) if args.hostile_seconds > 0 else None
    result = {
        "model": model_identity(),
        "image": f"{IMAGE.name} (512x512, one face)",
        "server_workers": args.workers,
        "cpu_cores": os.cpu_count(),
        "clients": args.clients,
        "runs": runs,
        "hostile": hostile,
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
    if hostile:
        md += hostile_markdown(hostile)
    save_results("load_api", result, md)


if __name__ == "__main__":
    main()
