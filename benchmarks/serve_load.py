"""Load on ``pipeline serve``: latency and throughput of single-sentence classify requests, against the same
run's in-process batch throughput measured in the same run.

1. Start the real server (``python -m pipeline serve --model RUN`` on a free 127.0.0.1 port) and time how long
   it takes until ``GET /readyz`` answers 200 (process start, imports, loading and warming up the run).
2. A warm-up of ``--warm-up`` requests at the highest concurrency (allocator pools, traced shapes, caches).
3. For 1, 8 and 32 concurrent keep-alive connections: ``--requests`` ``POST /v1/classify`` requests of one
   sentence each (the lines of ``corpora/blog_text/blog.txt``, in turn), split over the connections. Print
   p50/p90/p99 latency, requests per second and errors (any answer but 200). Concurrent requests share model
   calls through the server's micro-batching (``--batch-window-ms``). The clients are a minimal HTTP/1.1
   keep-alive client on asyncio streams (as ``wrk`` is), so that they take little of the CPU the server needs.
4. The server's resident memory (psutil) once ready, after the warm-up and after each level: the growth over
   the measured requests (at least 10,000 with the defaults) is what a leak would show.
5. The CPU time the server process and this client process spent per request (they share the machine).
6. With the server stopped (SIGTERM; it must exit 0), the same sentences through ``run.classify`` in this
   process: in batches of 64 (the reference: what the model does without HTTP) and one at a time. The ratio
   column is the server's requests per second over the batch reference's sentences per second.

The clients run on the same machine as the server and take CPU from it; on 2 cores the numbers are a lower
bound of what the server does alone.

Usage::

    .venv/bin/python benchmarks/serve_load.py                                   # saved_models/default, 4000 each
    .venv/bin/python benchmarks/serve_load.py --model saved_models/small --full  # 10000 requests each
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # run from anywhere without installing
SENTENCES_FILE = REPOSITORY / "corpora" / "blog_text" / "blog.txt"
READY_SECONDS = 300


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPOSITORY / "saved_models" / "default",
                        help="a classifier run folder (default: saved_models/default)")
    parser.add_argument("--requests", type=int, default=4000, help="requests per concurrency level (default: 4000)")
    parser.add_argument("--warm-up", type=int, default=1000, help="requests before the measured ones (default: 1000)")
    parser.add_argument("--full", action="store_true", help="10000 requests per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32],
                        help="concurrent connections, one level after the other (default: 1 8 32)")
    parser.add_argument("--batch-window-ms", type=float, default=5.0, help="the server's batching window")
    arguments = parser.parse_args(argv)
    if arguments.full:
        arguments.requests = 10_000
    if arguments.requests < 1 or min(arguments.concurrency) < 1:
        parser.error("--requests and --concurrency must be >= 1")
    if not (arguments.model / "config.json").is_file():
        parser.error(f"{arguments.model}: not a run folder; train one (make run) or pass --model")
    return arguments


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (psutil if installed, else /proc/<pid>/status)."""
    try:
        import psutil
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")
    return psutil.Process(pid).memory_info().rss / 2**20


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (psutil if installed, else /proc/<pid>/stat)."""
    try:
        import psutil
    except ImportError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def sentences() -> list[str]:
    return [line.strip() for line in SENTENCES_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


def percentile(sorted_values: list[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(share * len(sorted_values)))]


def request_bytes(port: int, text: str) -> bytes:
    """A keep-alive ``POST /v1/classify`` of one sentence, as bytes on the wire."""
    body = json.dumps({"texts": [text]}, ensure_ascii=False).encode("utf-8")
    head = (f"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("ascii") + body


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send ``request`` and read the whole answer (``Content-Length`` framed); its status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    body = await reader.readexactly(length)
    status = int(lines[0].split()[1])
    if status == 200 and not json.loads(body)["results"][0].get("label"):
        return 0  # a 200 without a label is an error too
    return status


async def load(port: int, texts: list[str], requests: int, concurrency: int, server_pid: int) -> dict:
    """``requests`` single-sentence classify requests over ``concurrency`` keep-alive connections, and the CPU
    time the server and this client spent per request."""
    latencies: list[float] = []
    errors = 0
    next_request = iter(range(requests))
    encoded = [request_bytes(port, text) for text in texts]

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for number in next_request:
                started = time.perf_counter()
                try:
                    ok = await asyncio.wait_for(exchange(reader, writer, encoded[number % len(encoded)]), 60) == 200
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, StopIteration):
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok
                if not ok:  # the connection may be unusable: open a new one
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    started, server_cpu, client_cpu = time.perf_counter(), cpu_seconds(server_pid), time.process_time()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    server_cpu, client_cpu = cpu_seconds(server_pid) - server_cpu, time.process_time() - client_cpu
    latencies.sort()
    return {"p50": percentile(latencies, 0.50), "p90": percentile(latencies, 0.90),
            "p99": percentile(latencies, 0.99), "per_second": requests / wall, "errors": errors,
            "server_cpu": server_cpu / requests, "client_cpu": client_cpu / requests}


def in_process(model: Path, texts: list[str], requests: int) -> tuple[float, float]:
    """Sentences per second of ``run.classify`` in this process: batches of 64, and one sentence per call."""
    from pipeline import load_run

    run = load_run(model)
    batch = [texts[number % len(texts)] for number in range(requests)]
    for start in range(0, min(len(batch), 64 * 3), 64):  # GiNZA's load, tracing and retracing: not timed
        run.classify(batch[start:start + 64])
    started = time.perf_counter()
    for start in range(0, len(batch), 64):
        run.classify(batch[start:start + 64])
    batched = len(batch) / (time.perf_counter() - started)
    singles = batch[:min(len(batch), 500)]
    started = time.perf_counter()
    for text in singles:
        run.classify([text])
    return batched, len(singles) / (time.perf_counter() - started)


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    import httpx

    texts = sentences()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as server_log:
        started = time.perf_counter()
        server = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "serve", "--model", str(arguments.model), "--port", str(port),
             "--batch-window-ms", str(arguments.batch_window_ms), "--max-pending", "4096"],
            cwd=REPOSITORY, stdin=subprocess.DEVNULL, stdout=server_log, stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        try:
            deadline = time.monotonic() + READY_SECONDS
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    server_log.seek(0)
                    raise SystemExit(f"the server did not get ready:\n{server_log.read()[-3000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                time.sleep(0.05)
            ready_seconds = time.perf_counter() - started
            rss_ready = rss_mib(server.pid)
            if arguments.warm_up:
                asyncio.run(load(port, texts, arguments.warm_up, max(arguments.concurrency), server.pid))
            rss_warm = rss_mib(server.pid)
            results = {}
            for level in arguments.concurrency:
                results[level] = asyncio.run(load(port, texts, arguments.requests, level, server.pid))
                results[level]["rss"] = rss_mib(server.pid)
            rss_after = rss_mib(server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                exit_status = server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                exit_status = server.wait()
    batched, single = in_process(arguments.model, texts, arguments.requests)

    print(f"pipeline serve --model {arguments.model} (batch window {arguments.batch_window_ms:g} ms), "
          f"{arguments.requests} single-sentence POST /v1/classify per level, clients on the same machine")
    measured = arguments.requests * len(arguments.concurrency)
    print(f"time to /readyz: {ready_seconds:.1f} s   exit status after SIGTERM: {exit_status}")
    print(f"server RSS: {rss_ready:.0f} MiB when ready, {rss_warm:.0f} MiB after {arguments.warm_up} warm-up "
          f"requests, {rss_after:.0f} MiB after {measured} more: {100 * (rss_after / rss_warm - 1):+.1f}%")
    print(f"{'connections':>11} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'requests/s':>11} {'errors':>7} "
          f"{'ratio':>6} {'server CPU ms/req':>18} {'client CPU ms/req':>18} {'RSS MiB':>8}")
    for level, result in results.items():
        print(f"{level:>11} {result['p50'] * 1000:>8.1f} {result['p90'] * 1000:>8.1f} {result['p99'] * 1000:>8.1f} "
              f"{result['per_second']:>11.1f} {result['errors']:>7} {result['per_second'] / batched:>6.2f} "
              f"{result['server_cpu'] * 1000:>18.2f} {result['client_cpu'] * 1000:>18.2f} {result['rss']:>8.0f}")
    print(f"in-process run.classify, batches of 64: {batched:.1f} sentences/s (the ratio's reference); "
          f"one sentence per call: {single:.1f} sentences/s")
    return 0 if exit_status == 0 and not any(result["errors"] for result in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
