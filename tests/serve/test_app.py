"""The HTTP service through the real app (FastAPI's TestClient: the app's own event loop in a thread) on small runs
trained once per session: every endpoint against the in-process :class:`pipeline.runs.Run`, the error contract
(4xx JSON, never 500), the limits, the token, CORS, the page, micro-batching, reloading, and Hypothesis fuzzing.

Two apps, each loaded once for the module: ``client`` serves a classifier, a language model and a reading model
with the default settings; ``secured`` serves two copies of the classifier (``alpha``, ``beta``) behind a token,
with CORS for one origin, a page of its own and small limits.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import itertools
import json
import logging
import shutil
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import write_classifier_run
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from serve_helpers import assert_error, wait_ready

from pipeline import __version__
from pipeline.io import replace_directory
from pipeline.runs import Run, load_run
from pipeline.serve import store
from pipeline.serve.app import ServeSettings, create_app

SENTENCES = ["週末は嵐山で紅葉を見ました。", "新しいスマホのバッテリーがすぐ切れて困っています。",
             "昨日の試合は延長戦の末にサヨナラ勝ちでした！", "駅前のラーメン屋はいつも行列ができている。"]
TOKEN = "test-token-0123456789abcdef"
ORIGIN = "http://page.example"
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def folders(classifier_folder, generator_folder, reading_folder) -> dict[str, Path]:
    return {folder.name: folder for folder in (classifier_folder, generator_folder, reading_folder)}


@pytest.fixture(scope="module")
def local(folders) -> dict[str, Run]:
    """The same runs loaded in this process: what the service must answer."""
    return {name: load_run(folder) for name, folder in folders.items()}


@pytest.fixture(scope="module")
def client(folders):
    app = create_app(folders, ServeSettings(batch_window_ms=20))
    with TestClient(app) as client:
        wait_ready(client.get)
        yield client


@pytest.fixture(scope="module")
def secured_folders(classifier_folder, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("secured")
    alpha = Path(shutil.copytree(classifier_folder, root / "alpha"))
    (alpha / "metrics.json").write_text('{"accuracy": 0.5, "perplexity": NaN}', encoding="utf-8")
    beta = Path(shutil.copytree(classifier_folder, root / "beta"))
    page = root / "page"
    page.mkdir()
    (page / "index.html").write_text("<!DOCTYPE html><title>page</title>", encoding="utf-8")
    (page / "app.js").write_text("console.log('page');", encoding="utf-8")
    return {"alpha": alpha, "beta": beta, "page": page}


@pytest.fixture(scope="module")
def secured(secured_folders):
    app = create_app({name: secured_folders[name] for name in ("alpha", "beta")},
                     ServeSettings(token=TOKEN, cors_origins=(ORIGIN,), max_texts=4, max_text_chars=50,
                                   max_body_bytes=4000, static_folder=secured_folders["page"]))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        wait_ready(client.get)
        yield client


# ------------------------------------------------------------------ health and models
def test_healthz_answers_at_once_and_readyz_only_when_loaded(folders, monkeypatch):
    release = threading.Event()
    original = store.load_served

    def held_back(*arguments, **options):
        assert release.wait(30), "the test never released the loading"
        return original(*arguments, **options)

    monkeypatch.setattr(store, "load_served", held_back)
    app = create_app({"small": folders["small"]}, ServeSettings(warm_up=False))
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "alive"}
        assert_error(client.get("/readyz"), 503, "not_ready", "small")
        assert_error(client.post("/v1/classify", json={"texts": ["a"]}), 503, "not_ready")
        release.set()
        wait_ready(client.get, 60)
        assert client.get("/readyz").json() == {"status": "ready", "models": ["small"]}


def test_models_describe_each_run(client, folders):
    models = {entry["name"]: entry for entry in client.get("/v1/models").json()["models"]}
    assert list(models) == list(folders)
    for name, folder in folders.items():
        entry = models[name]
        info = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        assert entry["fingerprint"] == hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()
        assert entry["created"] == info["created"] and entry["version"] == __version__
        assert entry["labels"] == json.loads((folder / "labels.json").read_text(encoding="utf-8"))
        assert entry["metrics"] is None  # trained, not evaluated
    assert [models[name]["task"] for name in folders] == ["classifier", "generator", "reading"]
    assert [models[name]["conditioned"] for name in folders] == [False, False, False]


def test_metrics_are_served_with_non_finite_numbers_as_null(secured):
    alpha = next(entry for entry in secured.get("/v1/models").json()["models"] if entry["name"] == "alpha")
    assert alpha["metrics"] == {"accuracy": 0.5, "perplexity": None}


# ------------------------------------------------------------------ the endpoints give what the Run API gives
def test_classify_gives_what_run_classify_gives(client, local):
    texts = [*SENTENCES, "。"]
    response = client.post("/v1/classify", json={"texts": texts})
    assert response.status_code == 200, response.text
    assert response.json() == {"model": "small", "results": local["small"].classify(texts)}
    assert response.headers["X-Pipeline-Version"] == __version__
    assert len(response.headers["X-Model-Fingerprint"]) == 64
    named = client.post("/v1/classify", json={"model": "small", "texts": texts[:1]}).json()
    assert named["results"] == local["small"].classify(texts[:1])


def test_explain_gives_what_run_explain_gives(client, local):
    response = client.post("/v1/explain", json={"texts": SENTENCES[:2]})
    assert response.status_code == 200, response.text
    assert response.json() == {"model": "small", "results": local["small"].explain(SENTENCES[:2])}
    result = response.json()["results"][0]
    assert result["method"] == "occlusion" and [token for token, _ in result["tokens"]][:2] == ["週末", "は"]


def test_generate_gives_what_run_generate_gives(client, local):
    body = {"prompt": "京都の", "num": 2, "seed": 5, "max_tokens": 6, "temperature": 0.9, "top_k": 20,
            "repetition_penalty": 1.2, "no_repeat_ngram": 2}
    response = client.post("/v1/generate", json=body)
    assert response.status_code == 200, response.text
    expected = local["generator_small"].generate("京都の", num=2, seed=5, max_tokens=6, temperature=0.9, top_k=20,
                                                 top_p=1.0, repetition_penalty=1.2, no_repeat_ngram=2)
    assert response.json() == {"model": "generator_small", "samples": expected}
    assert client.post("/v1/generate", json={"max_tokens": 3}).json()["samples"][0]["prompt"] == ""


def test_read_gives_what_run_read_gives(client, local):
    texts = ["今日は晴れ。", "京都"]
    response = client.post("/v1/read", json={"texts": texts, "beam_size": 2})
    assert response.status_code == 200, response.text
    expected = [{key: result[key] for key in ("text", "reading", "log_probability")}
                for result in local["reading_small"].read(texts, beam_size=2)]
    assert response.json() == {"model": "reading_small", "results": expected}


# ------------------------------------------------------------------ errors: 4xx JSON, one line, never 500
JSON = {"Content-Type": "application/json"}
BAD_REQUESTS = [
    # (path, raw body, status, code, fragment of the message)
    ("/v1/classify", '{"texts": ["\\ud800"]}', 422, "invalid_request", "surrogate"),
    ("/v1/classify", '{"texts": ["ok", "\\udfff\\ud800x"]}', 422, "invalid_request", "texts[1]"),
    ("/v1/classify", '{"texts": [1]}', 422, "invalid_request", "texts[0]"),
    ("/v1/classify", '{"texts": "one sentence"}', 422, "invalid_request", "texts"),
    ("/v1/classify", '{"texts": []}', 422, "invalid_request", "texts"),
    ("/v1/classify", '{"texts": [""]}', 422, "empty_text", "texts[0]"),
    ("/v1/classify", '{"texts": [" \\u3000\\n"]}', 422, "empty_text", "texts[0]"),
    ("/v1/classify", '{"texts": ["a"], "mdoel": "small"}', 422, "invalid_request", "mdoel: unknown field"),
    ("/v1/classify", '{"texts": ["a"]', 400, "malformed_json", "malformed JSON"),
    ("/v1/classify", "", 422, "invalid_request", "body"),
    ("/v1/classify", "[1, 2]", 422, "invalid_request", "JSON object"),
    ("/v1/classify", "null", 422, "invalid_request", "body"),
    ("/v1/classify", '{"model": "nope", "texts": ["a"]}', 404, "unknown_model",
     "loaded: small (classifier), generator_small"),
    ("/v1/classify", '{"model": "../../etc/passwd", "texts": ["a"]}', 404, "unknown_model", "not loaded"),
    ("/v1/classify", '{"model": "generator_small", "texts": ["a"]}', 422, "wrong_task", "use one of: small"),
    ("/v1/classify", '{"model": 3, "texts": ["a"]}', 422, "invalid_request", "model"),
    ("/v1/classify", json.dumps({"texts": ["長" * 2001]}), 422, "text_too_long", "at most 2000"),
    ("/v1/classify", json.dumps({"texts": ["a"] * 65}), 422, "too_many_texts", "at most 64"),
    ("/v1/explain", '{"texts": [null]}', 422, "invalid_request", "texts[0]"),
    ("/v1/generate", '{"temperature": NaN}', 422, "invalid_request", "temperature"),
    ("/v1/generate", '{"temperature": Infinity}', 422, "invalid_request", "temperature"),
    ("/v1/generate", '{"top_p": -Infinity}', 422, "invalid_request", "top_p"),
    ("/v1/generate", '{"temperature": 0}', 422, "invalid_request", "temperature"),
    ("/v1/generate", '{"temperature": "hot"}', 422, "invalid_request", "temperature"),
    ("/v1/generate", '{"max_tokens": 201}', 422, "invalid_request", "max_tokens"),
    ("/v1/generate", '{"max_tokens": 0}', 422, "invalid_request", "max_tokens"),
    ("/v1/generate", '{"max_tokens": 4.5}', 422, "invalid_request", "max_tokens"),
    ("/v1/generate", '{"max_tokens": true}', 422, "invalid_request", "max_tokens"),
    ("/v1/generate", '{"num": 11}', 422, "invalid_request", "num"),
    ("/v1/generate", '{"seed": -1}', 422, "invalid_request", "seed"),
    ("/v1/generate", '{"seed": 100000000000000000000000000000}', 422, "invalid_request", "seed"),
    ("/v1/generate", '{"prompt": "\\ud83d"}', 422, "invalid_request", "prompt"),
    ("/v1/generate", json.dumps({"prompt": "a" * 1001}), 422, "text_too_long", "prompt"),
    ("/v1/generate", '{"label": "Kyoto"}', 422, "invalid_request", "not conditioned"),
    ("/v1/generate", '{"model": "small"}', 422, "wrong_task", "generator_small"),
    ("/v1/read", '{"texts": ["a"], "beam_size": 0}', 422, "invalid_request", "beam_size"),
    ("/v1/read", '{"texts": ["a"], "length_penalty": 3}', 422, "invalid_request", "length_penalty"),
]


@pytest.mark.parametrize(("path", "body", "status", "code", "fragment"), BAD_REQUESTS,
                         ids=[f"{path}-{body[:30]}" for path, body, *_ in BAD_REQUESTS])
def test_bad_requests_get_a_4xx_json_error(client, path, body, status, code, fragment):
    assert_error(client.post(path, content=body.encode("utf-8"), headers=JSON), status, code, fragment)


def test_errors_never_show_a_server_path(client, folders):
    message = assert_error(client.post("/v1/generate", json={"label": "Kyoto"}), 422)["message"]
    assert str(folders["generator_small"]) not in message and "generator_small" in message


def test_other_http_errors_have_the_same_shape(client):
    assert_error(client.get("/nope"), 404, "not_found", "/docs")
    assert_error(client.get("/v1/classify"), 405, "method_not_allowed")
    assert_error(client.post("/v1/classify", content=b'{"texts": ["\xff\xfe"]}', headers=JSON), 400, "bad_request",
                 "UTF-8")
    assert_error(client.post("/v1/classify", content=b'{"texts": ["a"]}', headers={"Content-Type": "text/plain"}),
                 422, "invalid_request", "JSON object")


def test_body_size_limit_from_the_header_and_from_a_streamed_body(secured):
    assert_error(secured.post("/v1/classify", content=b"x" * 5000, headers=JSON), 413, "too_large", "4000 bytes")
    streamed = iter([b'{"texts": ["', b"a" * 3000, b"b" * 3000, b'"]}'])  # chunked: no Content-Length
    assert_error(secured.post("/v1/classify", content=streamed, headers=JSON), 413, "too_large")
    assert secured.post("/v1/classify", json={"model": "alpha", "texts": ["京都"]}).status_code == 200


def test_limits_follow_the_settings(secured):
    assert_error(secured.post("/v1/classify", json={"model": "alpha", "texts": ["a"] * 5}), 422, "too_many_texts",
                 "at most 4")
    assert_error(secured.post("/v1/classify", json={"model": "alpha", "texts": ["a" * 51]}), 422, "text_too_long",
                 "at most 50")


def test_model_is_required_when_two_classifiers_are_loaded(secured):
    assert_error(secured.post("/v1/classify", json={"texts": ["京都"]}), 422, "model_required", "alpha, beta")
    assert_error(secured.post("/v1/generate", json={}), 422, "wrong_task", "alpha (classifier)")


# ------------------------------------------------------------------ token, CORS, page, docs, log
def test_token_is_required_except_for_health_page_and_docs(secured):
    bare = {"Authorization": ""}
    for path in ("/v1/models", "/v1/classify", "/v1/models/reload", "/nope"):
        method = secured.get if path in ("/v1/models", "/nope") else secured.post
        response = method(path, headers=bare)
        assert_error(response, 401, "unauthorized", "Authorization: Bearer")
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert_error(secured.get("/v1/models", headers={"Authorization": f"Bearer {TOKEN}x"}), 401, "unauthorized",
                 "wrong bearer token")
    assert_error(secured.get("/v1/models", headers={"Authorization": TOKEN}), 401, "unauthorized")
    # the token is checked before the body is read: an unauthenticated 1 MB upload costs nothing
    assert_error(secured.post("/v1/classify", content=b"x" * 1_000_000, headers=bare), 401, "unauthorized")
    for path in ("/healthz", "/readyz", "/", "/static/app.js", "/openapi.json", "/docs"):
        assert secured.get(path, headers=bare).status_code == 200, path
    assert secured.get("/v1/models").status_code == 200
    schema = secured.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_cors_only_for_the_configured_origin(secured, client):
    allowed = secured.post("/v1/classify", json={"model": "alpha", "texts": ["京都"]}, headers={"Origin": ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = secured.post("/v1/classify", json={"model": "alpha", "texts": ["京都"]},
                         headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    preflight = secured.options("/v1/classify", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type", "Authorization": ""})
    assert preflight.status_code == 200 and "authorization" in preflight.headers["access-control-allow-headers"].lower()
    refused = secured.get("/v1/models", headers={"Origin": ORIGIN, "Authorization": ""})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ORIGIN  # page reads it
    unconfigured = client.post("/v1/classify", json={"texts": ["京都"]}, headers={"Origin": ORIGIN})
    assert unconfigured.status_code == 200 and "access-control-allow-origin" not in unconfigured.headers


def test_page_and_its_files_are_served(secured):
    page = secured.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>page</title>" in page.text
    assert secured.get("/static/app.js").text == "console.log('page');"
    assert secured.get("/static/../alpha/config.json").status_code == 404
    assert_error(secured.get("/static/missing.js"), 404)


def test_openapi_describes_the_request_and_response_bodies(client):
    schema = client.get("/openapi.json").json()
    assert {"/healthz", "/readyz", "/v1/models", "/v1/models/reload", "/v1/classify", "/v1/explain",
            "/v1/generate", "/v1/read"} <= set(schema["paths"])
    assert {"TextsRequest", "GenerateRequest", "ReadRequest", "ClassifyResponse", "ExplainResponse", "GenerateResponse",
            "ReadResponse", "ModelsResponse", "ErrorResponse"} <= set(schema["components"]["schemas"])
    generate = schema["components"]["schemas"]["GenerateRequest"]["properties"]
    assert generate["temperature"]["default"] == 0.8 and generate["max_tokens"]["default"] == 40
    assert "securitySchemes" not in schema.get("components", {})  # no token on this server


def test_every_request_is_logged_with_status_and_latency(client, caplog):
    caplog.set_level(logging.INFO, logger="pipeline.serve")
    client.get("/healthz")
    client.post("/v1/classify", json={"texts": []})
    lines = [record.getMessage() for record in caplog.records if record.name == "pipeline.serve"]
    assert any(line.startswith("GET /healthz 200 ") and line.endswith(" ms") for line in lines), lines
    assert any(line.startswith("POST /v1/classify 422 ") for line in lines), lines


# ------------------------------------------------------------------ batching and worker threads
def send_together(function, arguments: list) -> list:
    """``function(argument)`` for every argument, each on a thread of its own, all released at the same moment."""
    barrier = threading.Barrier(len(arguments))

    def released(argument):
        barrier.wait(timeout=30)
        return function(argument)

    with concurrent.futures.ThreadPoolExecutor(len(arguments)) as pool:
        return list(pool.map(released, arguments, timeout=120))


@pytest.fixture
def model_calls(monkeypatch):
    """Every ``Run.classify`` call's texts, and the most calls one run ever had running at once."""
    original = Run.classify
    calls, running, lock = [], {"now": {}, "most": 0}, threading.Lock()

    def counted(self, texts, batch_size=64):
        with lock:
            calls.append(list(texts))
            running["now"][id(self)] = running["now"].get(id(self), 0) + 1
            running["most"] = max(running["most"], running["now"][id(self)])
        try:
            return original(self, texts, batch_size)
        finally:
            with lock:
                running["now"][id(self)] -= 1

    monkeypatch.setattr(Run, "classify", counted)
    return calls, running


def test_concurrent_requests_share_one_model_call(client, local, model_calls):
    texts = [f"{sentence}{number}回目" for number in range(4) for sentence in SENTENCES]  # 16 distinct texts
    responses = send_together(lambda text: client.post("/v1/classify", json={"texts": [text]}), texts)
    calls, running = list(model_calls[0]), model_calls[1]  # the server's calls (not the reference calls below)
    assert [response.status_code for response in responses] == [200] * len(texts)
    assert sorted(text for call in calls for text in call) == sorted(texts)  # each text went through once
    assert len(calls) < len(texts), f"{len(calls)} model calls for {len(texts)} requests"
    assert running["most"] == 1
    # Each request gets exactly what run.classify gives for its text in the batch it went with ...
    expected = {}
    for call in calls:
        expected.update(zip(call, local["small"].classify(call)))
    for text, response in zip(texts, responses):
        (result,) = response.json()["results"]
        assert result == expected[text]
        # ... which is run.classify([text]) but for float32 rounding of a larger padded batch
        (alone,) = local["small"].classify([text])
        assert result["label"] == alone["label"]
        assert result["probabilities"] == pytest.approx(alone["probabilities"], abs=1e-6)


def test_model_calls_never_block_the_event_loop(client, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    original = Run.classify

    def slow(self, texts, batch_size=64):
        entered.set()
        assert release.wait(30)
        return original(self, texts, batch_size)

    monkeypatch.setattr(Run, "classify", slow)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.post, "/v1/classify", json={"texts": ["京都"]})
        assert entered.wait(30)
        assert client.get("/healthz").status_code == 200  # answered while the model call hangs
        assert client.get("/v1/models").status_code == 200
        release.set()
        assert pending.result(timeout=60).status_code == 200


def test_hostile_requests_beside_good_ones(client, local):
    """Malformed, oversized and wrongly typed requests, sent at the same time as good ones, get their 4xx; the good
    ones still get the right answers."""
    hostile = [
        ('{"texts": ["\\ud800"]}', 422), ('{"texts": [', 400), ('{"texts": [{"a": 1}]}', 422),
        (json.dumps({"texts": ["x" * 2001]}), 422), ('{"model": "nope", "texts": ["a"]}', 404),
        ('{"texts": ["a"]}' + " " * 1_000_001, 413), ('{"texts": [""]}', 422), ('{"texts": 1e999}', 422),
        ('{"texts": ["a"], "model": null, "extra": [[[[[]]]]]}', 422), ("\x00\x01", 400),
    ]
    good = ["京都の紅葉がきれいだった。", "スマホを買い替えた🎉", "ｻｯｶｰの試合\u0007を見た", "野球" * 500,
            "Ｒａｍｅｎ　ｉｓ　ｇｏｏｄ", "。"]
    expected = {text: local["small"].classify([text])[0] for text in good}
    goods, hostiles = [("good", text) for text in good * 3], [("hostile", item) for item in hostile * 2]
    jobs = [job for pair in itertools.zip_longest(goods, hostiles) for job in pair if job is not None]

    def send(job):
        kind, item = job
        if kind == "good":
            return client.post("/v1/classify", json={"texts": [item]})
        return client.post("/v1/classify", content=item[0].encode("utf-8"), headers=JSON)

    for (kind, item), response in zip(jobs, send_together(send, jobs)):
        if kind == "hostile":
            assert_error(response, item[1])
            continue
        assert response.status_code == 200, response.text
        (result,) = response.json()["results"]
        assert result["text"] == item and result.get("label") == expected[item].get("label")
        if "probabilities" in result:
            assert result["probabilities"] == pytest.approx(expected[item]["probabilities"], abs=1e-6)


# ------------------------------------------------------------------ reload
def test_reload_swaps_in_republished_runs_and_keeps_a_broken_one_out(secured, secured_folders, tmp_path):
    before = {entry["name"]: entry for entry in secured.get("/v1/models").json()["models"]}
    assert secured.post("/v1/models/reload").json() == {"reloaded": [], "unchanged": ["alpha", "beta"], "failed": []}
    replace_directory(write_classifier_run(tmp_path / "new" / "alpha"), secured_folders["alpha"])
    assert secured.post("/v1/models/reload").json() == {"reloaded": ["alpha"], "unchanged": ["beta"], "failed": []}
    after = {entry["name"]: entry for entry in secured.get("/v1/models").json()["models"]}
    assert after["alpha"]["labels"] == ["a", "b"] and after["alpha"]["fingerprint"] != before["alpha"]["fingerprint"]
    assert after["beta"] == before["beta"]
    result = secured.post("/v1/classify", json={"model": "alpha", "texts": ["京都"]}).json()["results"][0]
    assert set(result["probabilities"]) == {"a", "b"}
    broken = Path(shutil.copytree(secured_folders["beta"], tmp_path / "broken"))
    (broken / "model.keras").write_bytes(b"not a zip")
    replace_directory(broken, secured_folders["beta"])
    report = secured.post("/v1/models/reload").json()
    assert report["reloaded"] == [] and [failure["name"] for failure in report["failed"]] == ["beta"]
    assert "model.keras" in report["failed"][0]["message"]
    kept = secured.post("/v1/classify", json={"model": "beta", "texts": ["京都"]}).json()["results"][0]
    assert set(kept["probabilities"]) == set(before["beta"]["labels"])  # the old run still answers


# ------------------------------------------------------------------ fuzzing: no input gets a 500
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
FIELDS = ["model", "texts", "prompt", "temperature", "top_k", "top_p", "max_tokens", "num", "seed",
          "repetition_penalty", "no_repeat_ngram", "label", "beam_size", "length_penalty"]


@FUZZ
@given(path=st.sampled_from(["/v1/classify", "/v1/explain", "/v1/generate", "/v1/read"]),
       body=json_values | st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5))
def test_fuzzed_bodies_get_a_json_answer_never_a_500(client, path, body):
    if isinstance(body, dict) and path == "/v1/generate":  # keep sampling cheap; the limits have their own tests
        body = {**body, "max_tokens": 3} if "max_tokens" in body else body
    content = json.dumps(body, allow_nan=True).encode("utf-8")  # NaN and Infinity as JSON's non-standard words
    response = client.post(path, content=content, headers=JSON)
    event(f"status {response.status_code}")  # --hypothesis-show-statistics shows how many were answered
    assert response.status_code in (200, 400, 404, 413, 422), (response.status_code, response.text[:300])
    if response.status_code != 200:
        assert_error(response, response.status_code)


characters = st.characters(codec=None, categories=None) | st.sampled_from(["\ud800", "\udfff", "\x00", "\u3000", "。"])


@FUZZ
@given(texts=st.lists(st.text(characters, max_size=30), min_size=0, max_size=5))
def test_fuzzed_texts_are_classified_or_refused_with_the_reason(client, texts):
    response = client.post("/v1/classify", content=json.dumps({"texts": texts}).encode("ascii"), headers=JSON)
    event(f"status {response.status_code}")
    valid = texts and all(text.strip() and not any("\ud800" <= c <= "\udfff" for c in text) for text in texts)
    if valid:
        assert response.status_code == 200, response.text[:300]
        results = response.json()["results"]
        assert [result["text"] for result in results] == texts
        assert all(("label" in result) != ("error" in result) for result in results)
    else:
        assert_error(response, 422)


@settings(FUZZ, max_examples=80)
@given(prompt=st.text(characters, max_size=20),  # each setting: mostly valid, sometimes out of range
       temperature=st.floats(0.01, 100) | st.floats(-1, 200) | st.just(1e-300), top_k=st.integers(0, 50)
       | st.integers(-1, 10**6), top_p=st.floats(0.01, 1) | st.floats(-0.5, 1.5), seed=st.integers(0, 2**32 - 1)
       | st.integers(-1, 2**33), repetition_penalty=st.floats(1, 5) | st.floats(0, 200),
       no_repeat_ngram=st.integers(0, 4) | st.integers(-1, 200))
def test_fuzzed_sampling_settings_sample_or_are_refused(client, prompt, temperature, top_k, top_p, seed,
                                                        repetition_penalty, no_repeat_ngram):
    body = {"prompt": prompt, "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed,
            "repetition_penalty": repetition_penalty, "no_repeat_ngram": no_repeat_ngram, "max_tokens": 3}
    response = client.post("/v1/generate", content=json.dumps(body).encode("ascii"), headers=JSON)
    event(f"status {response.status_code}")
    assert response.status_code in (200, 422), (response.status_code, response.text[:300])
    if response.status_code == 200:
        (sample,) = response.json()["samples"]
        assert len(sample["tokens"]) == len(sample["probabilities"]) <= 3
    else:
        assert_error(response, 422)
