"""``pipeline serve`` as a user runs it: a real process on a free localhost port, spoken to over HTTP.

One server (``alpha`` and ``swap``, two copies of the small classifier, behind a token) answers the
classify, token and SIGHUP-reload tests; the module's last test stops it with SIGTERM while a slow request
is in flight (a server start costs seconds). User errors (a missing folder, two runs with one name, a port
in use, a bad token file, the ``serve`` extra missing) stop before any model loads: exit status 2, one
``error:`` line.
Only 127.0.0.1 is spoken to; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from helpers import REPOSITORY, assert_user_error, cli, write_classifier_run
from serve_helpers import READY_SECONDS, assert_error

from pipeline.io import replace_directory
from pipeline.runs import load_run

pytestmark = pytest.mark.slow
TOKEN = "cli-test-token-0123456789"
SENTENCES = ["週末は嵐山で紅葉を見ました。", "新しいスマホのバッテリーがすぐ切れて困っています。"]


def free_port() -> int:
    """A TCP port nobody listens on now (uvicorn cannot report the port it got for 0, so pick one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A ``python -m pipeline serve`` process on 127.0.0.1, its output in a file."""

    def __init__(self, log_path: Path, *arguments: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.log = log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "serve", "--port", str(self.port), *arguments], cwd=REPOSITORY,
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"})
        self.folders: dict[str, Path] = {}

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the server exited:\n{self.output()[-3000:]}"
            with contextlib.suppress(httpx.TransportError):
                if self.http.get("/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"not ready within {READY_SECONDS} s:\n{self.output()[-3000:]}")

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def token_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("token") / "token.txt"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def server(classifier_folder, token_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-serve")
    alpha = shutil.copytree(classifier_folder, root / "alpha")
    swap = shutil.copytree(classifier_folder, root / "swap")
    running = Server(root / "server.log", "--model", str(alpha), "--model", str(swap), "--token-file",
                     str(token_file), "--max-text-chars", "20000", "--max-body-bytes", "8000000")
    running.folders = {"alpha": Path(alpha), "swap": Path(swap)}
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def test_classify_over_http_gives_what_run_classify_gives(server, classifier_folder):
    response = server.http.post("/v1/classify", json={"model": "alpha", "texts": SENTENCES})
    assert response.status_code == 200, response.text
    assert response.json() == {"model": "alpha", "results": load_run(classifier_folder).classify(SENTENCES)}
    names = [entry["name"] for entry in server.http.get("/v1/models").json()["models"]]
    assert names == ["alpha", "swap"]
    assert "POST /v1/classify 200 " in server.output()  # the request log line
    assert "Traceback" not in server.output()


def test_token_is_required(server):
    response = httpx.post(f"{server.url}/v1/classify", json={"model": "alpha", "texts": ["京都"]}, timeout=30)
    assert_error(response, 401, "unauthorized", "Authorization: Bearer")
    wrong = httpx.get(f"{server.url}/v1/models", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert_error(wrong, 401, "unauthorized")
    assert httpx.get(f"{server.url}/healthz", timeout=30).json() == {"status": "alive"}


def test_sighup_reloads_a_republished_run(server, tmp_path):
    before = {entry["name"]: entry for entry in server.http.get("/v1/models").json()["models"]}
    replace_directory(write_classifier_run(tmp_path / "new" / "swap"), server.folders["swap"])
    os.kill(server.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        models = {entry["name"]: entry for entry in server.http.get("/v1/models").json()["models"]}
        if models["swap"]["labels"] == ["a", "b"]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"swap was not reloaded:\n{server.output()[-3000:]}")
    assert models["swap"]["fingerprint"] != before["swap"]["fingerprint"] and models["alpha"] == before["alpha"]
    result = server.http.post("/v1/classify", json={"model": "swap", "texts": ["京都"]}).json()["results"][0]
    assert set(result["probabilities"]) == {"a", "b"}
    assert "reload: 1 reloaded, 1 unchanged, 0 failed" in server.output()


def raw_request(port: int, body: bytes) -> socket.socket:
    """Send one complete HTTP request (``Connection: close``) and return the socket to read the answer from."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=120)
    head = (f"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    connection.sendall(head.encode("ascii") + body)
    return connection


def read_response(connection: socket.socket) -> tuple[int, dict, float]:
    """(status, JSON body, time the last byte arrived) of the answer on ``connection``."""
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    finished = time.monotonic()
    connection.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body), finished


def test_the_listening_socket_lets_asyncio_turn_off_nagle():
    """asyncio sets TCP_NODELAY only on IPPROTO_TCP sockets; on a protocol-0 socket every answer waited ~40 ms
    for the client's delayed ACK."""
    from pipeline.cli.serve import bind

    with bind("127.0.0.1", 0) as listener:
        assert listener.proto == socket.IPPROTO_TCP


def test_answers_do_not_wait_for_delayed_acks(server):
    seconds = []
    for _ in range(9):
        started = time.perf_counter()
        assert server.http.get("/healthz").status_code == 200
        seconds.append(time.perf_counter() - started)
    assert sorted(seconds)[4] < 0.035, seconds  # the median; a delayed ACK costs 40 ms every time


# ------------------------------------------------------------------ user errors: before any model loads
def test_user_errors_stop_before_loading(classifier_folder, token_file, tmp_path):
    other = shutil.copytree(classifier_folder, tmp_path / "elsewhere" / classifier_folder.name)
    assert_user_error(cli("serve", "--model", str(classifier_folder), "--model", str(other)), "two models named")
    assert_user_error(cli("serve", "--model", str(tmp_path / "missing")), "run folder not found")
    short = tmp_path / "short.txt"
    short.write_text("abc\n", encoding="utf-8")
    assert_user_error(cli("serve", "--model", str(classifier_folder), "--token-file", str(short)), "at least 16")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        assert_user_error(cli("serve", "--model", str(classifier_folder), "--port", port), "already in use")


def test_a_run_that_cannot_be_loaded_stops_the_server(classifier_folder, tmp_path):
    folder = Path(shutil.copytree(classifier_folder, tmp_path / "broken"))
    (folder / "model.keras").write_bytes(b"not a zip")
    result = cli("serve", "--model", str(folder), "--port", str(free_port()), timeout=180)
    assert_user_error(result, "model 'broken'", "cannot load the model")


def test_missing_serve_extra_names_the_install_command(classifier_folder):
    script = ("import sys; sys.modules['uvicorn'] = None; from pipeline.cli import main; "
              f"sys.exit(main(['serve', '--model', {str(classifier_folder)!r}]))")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPOSITORY, capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert_user_error(result, "pip install ja-rnn-pipeline[serve]")


# ------------------------------------------------------------------ last: it stops the module's server
def test_sigterm_finishes_the_request_in_flight_and_exits_0(server):
    long_text = ("".join(SENTENCES) * 700)[:19990]
    texts = [f"{number}{long_text}" for number in range(64)]  # 1.28 M characters: seconds, even on the fast path
    answer: dict = {}
    body = json.dumps({"model": "alpha", "texts": texts}, ensure_ascii=False).encode("utf-8")
    connection = raw_request(server.port, body)
    reader = threading.Thread(target=lambda: answer.update(zip(("status", "body", "at"), read_response(connection))))
    reader.start()
    time.sleep(0.5)  # the server's event loop reads the request in milliseconds; the model needs seconds
    assert not answer, "the request finished before SIGTERM; make it longer"
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    exit_status = server.process.wait(timeout=120)
    reader.join(timeout=120)
    output = server.output()
    assert exit_status == 0, output[-3000:]
    assert answer["status"] == 200 and len(answer["body"]["results"]) == 64, output[-3000:]
    assert answer["at"] > signalled  # it was answered after the signal: in flight, not refused
    assert "Traceback" not in output and output.rstrip().endswith("stopped"), output[-3000:]
    assert output.index("Shutting down") < output.rindex("POST /v1/classify 200 "), output[-3000:]
