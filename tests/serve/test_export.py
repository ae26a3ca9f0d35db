"""Tests of ``pipeline export`` (pipeline/serve/export.py, pipeline/cli/export.py, ``Run.export`` and the tasks'
export modules): the SavedModel is loaded by ``tf.saved_model.load`` in a fresh Python that never imports this
package, fed the tokens the run's tokenizer gives (computed here), and answers what the run itself answers:
``run.classify`` for classifiers, the run's Keras model for language models."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import KNB_LABELS
from lm_helpers import set_random_weights

from pipeline import cli as cli_module
from pipeline import config as config_module
from pipeline.errors import PipelineError
from pipeline.paths import Paths, RunPaths
from pipeline.runs import EXPORT_METADATA, Run, load_run, write_run_metadata
from pipeline.text.vocab import Vocabulary

CLASSIFIED = ["週末は嵐山で紅葉を見てから湯豆腐を食べました。", "新しいスマホのバッテリーがすぐ切れて困っています。",
              "ｻｯｶｰの試合で延長戦になった", "ＧｏｏｇｌｅのＡＰＩとｸﾞｰｸﾞﾙﾏｯﾌﾟ", "寺"]  # width, unknown words, one token

# Runs in a fresh interpreter: load each export, call one signature, print the outputs as JSON. The package must
# not be imported there (TensorFlow Serving does not have it).
SERVE = """
import json, sys
import tensorflow as tf

results = []
for call in json.load(sys.stdin):
    loaded = tf.saved_model.load(call["path"])
    function = loaded.signatures[call["signature"]]
    outputs = function(**{name: tf.constant(value, tf.string) for name, value in call["inputs"].items()})
    decoded = {name: [item.decode() if isinstance(item, bytes) else item for item in tensor.numpy().tolist()]
               for name, tensor in outputs.items()}
    inputs = {name: [spec.dtype.name, spec.shape.as_list()]
              for name, spec in function.structured_input_signature[1].items()}
    results.append({"outputs": decoded, "inputs": inputs, "signatures": sorted(loaded.signatures)})
leaked = sorted(name for name in sys.modules if name == "pipeline" or name.startswith("pipeline."))
assert not leaked, leaked
print(json.dumps(results))
"""


def serve(calls: list[dict], cwd: Path) -> list[dict]:
    """``[{"path", "signature", "inputs": {name: nested lists of strings}}]`` -> outputs, input specs and the
    signature names of each, computed by TensorFlow alone in a fresh process started away from the checkout."""
    result = subprocess.run([sys.executable, "-c", SERVE], input=json.dumps(calls), capture_output=True, text=True,
                            encoding="utf-8", cwd=cwd, timeout=300,
                            env={"PATH": "", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def padded(rows: list[list[str]]) -> list[list[str]]:
    """Right-pad token lists with "" to one width."""
    width = max(1, max(len(row) for row in rows))
    return [list(row) + [""] * (width - len(row)) for row in rows]


def token_inputs(run: Run, texts: list[str]) -> dict:
    """The ``tokens`` (field ``vectorize.token_field``), ``surfaces`` and ``text`` (normalised) the run's
    tokenizer gives for ``texts``, as ``classify`` computes them."""
    from pipeline.classifier.predict import tokenize_texts

    cleaned, tokens = tokenize_texts(run, texts)
    assert all(cleaned) and len(tokens) == len(texts)
    return {"tokens": padded([token[run.config.vectorize.token_field] for token in tokens]),
            "surfaces": padded([token["surface"] for token in tokens]), "text": cleaned,
            **{f"{field}s": padded([token[field] for token in tokens])
               for field in run.config.vectorize.fallback_fields}}


def classify_probabilities(run: Run, texts: list[str]) -> tuple[np.ndarray, list[str]]:
    results = run.classify(texts)
    return np.array([[result["probabilities"][label] for label in run.labels] for result in results]), \
        [result["label"] for result in results]


# ------------------------------------------------------------------ classifiers
def test_classifier_export_answers_as_classify(small_trained, tmp_path):
    run = load_run(small_trained[1])
    metadata = run.export(tmp_path / "export")
    inputs = token_inputs(run, CLASSIFIED)
    answer, labels = serve([{"path": str(tmp_path / "export"), "signature": "serving_default",
                             "inputs": {"tokens": inputs["tokens"]}},
                            {"path": str(tmp_path / "export"), "signature": "labels", "inputs": {}}], tmp_path)
    assert answer["inputs"] == {"tokens": ["string", [None, None]]}  # the small config has no subword features
    assert answer["signatures"] == ["labels", "serving_default"]
    expected, expected_labels = classify_probabilities(run, CLASSIFIED)
    probabilities = np.array(answer["outputs"]["probabilities"])
    assert probabilities.shape == (len(CLASSIFIED), len(KNB_LABELS))
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-5)
    assert answer["outputs"]["label"] == expected_labels
    assert labels["outputs"] == {"labels": KNB_LABELS}
    written = json.loads((tmp_path / "export" / EXPORT_METADATA).read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(metadata, ensure_ascii=False))
    assert written["labels"] == KNB_LABELS and written["task"] == "classifier" and written["exported_by"] == "pipeline"
    assert set(written["signatures"]["serving_default"]["inputs"]) == {"tokens"}
    assert written["token_field"] == run.config.vectorize.token_field and written["contains"]


@pytest.fixture(scope="module")
def subword_ensemble_run(small_trained, tmp_path_factory) -> Path:
    """The small run's vocabulary and tokenizer with every in-graph feature on: a character CNN and the n-gram
    bag (``both``) beside the words, 6 tokens at most (truncation), and a char n-gram member fitted on the
    corpus's training texts, mixed with w = 0.35. The recurrent model keeps random weights (scale 0.5). Its BiLSTM
    has dropout and the embedding word dropout, as configs/default.toml: a cell draws its dropout mask even when
    not training, so the graph reads the seed generators' state, which the export must track."""
    import pandas as pd

    from pipeline.classifier.ensemble import CharNgramModel, fit_char_ngram
    from pipeline.classifier.model import build_classifier

    config, trained = small_trained
    settings = json.loads(RunPaths(trained).config.read_text(encoding="utf-8"))
    settings["model"].update(char_encoder="cnn", max_chars=4, char_buckets=500, ngram_features="both",
                             ngram_buckets=2000, ensemble="char_ngram", pooling="attention", embedding_dropout=0.1,
                             layers=[{"type": "bilstm", "units": 8, "dropout": 0.2}])
    settings["train"]["max_length"] = 6
    settings["vectorize"]["form_fallback"] = True  # the norms and lemmas go in too
    subword_config = config_module.from_dict(settings, where="test")
    vocab = Vocabulary.load(RunPaths(trained).vocab)
    folder = tmp_path_factory.mktemp("subword-ensemble") / "run"
    folder.mkdir()
    matrix = np.random.default_rng(0).normal(0.0, 0.5, size=(len(vocab), 16)).astype(np.float32)
    model = build_classifier(subword_config.model, matrix, len(KNB_LABELS), seed=0)
    set_random_weights(model, seed=1)
    model.save(RunPaths(folder).model)
    tokens = pd.read_parquet(Paths.from_config(config).tokens, columns=["text", "label", "split"])
    train = tokens[tokens["split"] == "train"].groupby("label").head(150)  # every label, fast to fit
    targets = train["label"].map({label: i for i, label in enumerate(KNB_LABELS)}).to_numpy()
    member: CharNgramModel = fit_char_ngram({"train": train["text"].tolist(), "validation": []},
                                            {"train": targets, "validation": targets[:0]}, KNB_LABELS, seed=0,
                                            c_grid=(10.0,), fixed_c=10.0)
    member.save(folder)
    (folder / "ensemble.json").write_text(json.dumps({"members": ["recurrent", "char_ngram"], "weight": 0.35}),
                                          encoding="utf-8")
    write_run_metadata(folder, subword_config, vocab, KNB_LABELS)
    return folder


def test_export_computes_subword_ids_truncation_and_the_ensemble_in_the_graph(subword_ensemble_run, tmp_path):
    run = load_run(subword_ensemble_run)
    assert "ensemble" in run.extras and run.config.train.max_length == 6
    run.export(tmp_path / "export")
    texts = [*CLASSIFIED, "昨日は京都に行かなかった", "いちごを言い"]  # inflected forms outside the vocabulary
    inputs = token_inputs(run, texts)
    assert max(len([t for t in row if t]) for row in inputs["tokens"]) > 6  # truncation matters
    [answer] = serve([{"path": str(tmp_path / "export"), "signature": "serving_default", "inputs": inputs}],
                     tmp_path)
    assert answer["inputs"] == {"tokens": ["string", [None, None]], "surfaces": ["string", [None, None]],
                                "text": ["string", [None]], "norms": ["string", [None, None]],
                                "lemmas": ["string", [None, None]]}
    # vectorize.form_fallback: some word is outside the vocabulary but its norm or lemma is not, within 6 tokens
    vocab = run.vocab.index
    assert any(token and token not in vocab and (norm in vocab or lemma in vocab)
               for row in range(len(texts)) for token, norm, lemma in
               zip(inputs["tokens"][row][:6], inputs["norms"][row][:6], inputs["lemmas"][row][:6]))
    expected, expected_labels = classify_probabilities(run, texts)
    np.testing.assert_allclose(np.array(answer["outputs"]["probabilities"]), expected, rtol=0, atol=1e-5)
    assert answer["outputs"]["label"] == expected_labels
    # both members count: the answer is neither the recurrent model nor the n-gram member alone
    member, weight = run.extras["ensemble"]
    assert weight == 0.35 and np.abs(expected - member.probabilities(inputs["text"])).max() > 1e-3
    contains = " ".join(json.loads((tmp_path / "export" / EXPORT_METADATA).read_text(encoding="utf-8"))["contains"])
    assert "crc32" in contains and "char n-gram member" in contains and "0.35" in contains


# ------------------------------------------------------------------ language models
def language_model_run(folder: Path, small_vocab: Vocabulary, **settings) -> Path:
    """A language-model run folder on the small corpus's tokenizer: the first 300 words of its vocabulary with
    <s> and </s>, a model of ``settings`` with random weights (scale 0.5; with ``members``, an ensemble of that
    many, each with weights of its own), labels a and b."""
    import dataclasses

    from pipeline.language_model.model import build_ensemble, build_generator

    vocab = Vocabulary(["<pad>", "<unk>", "<s>", "</s>", *small_vocab.tokens[2:300]])
    config = config_module.from_dict({"run_name": folder.name, "vectorize": {"vectors": "none"},
                                      "model": {"task": "generator", "embedding_dim": 16, **settings.pop("model")},
                                      **settings}, where="test")
    matrix = np.random.default_rng(0).normal(0.0, 0.5, size=(len(vocab), 16)).astype(np.float32)
    single = dataclasses.replace(config.model, members=1)
    members = [build_generator(single, matrix, seed=0, num_labels=2, name=f"member_{member}")
               for member in range(config.model.members)]
    for member, model in enumerate(members):
        set_random_weights(model, seed=2 + member)
    model = members[0] if len(members) == 1 else build_ensemble(members)
    folder.mkdir(parents=True)
    model.save(RunPaths(folder).model)
    write_run_metadata(folder, config, vocab, ["a", "b"])
    return folder


PROMPTS = ["京都の", "新しいスマホのバッテリー", "", "ｸﾞｰｸﾞﾙの地図"]  # "" asks for a sentence's first token


def test_language_model_export_gives_the_models_next_token_distribution(small_trained, generator_folder, tmp_path):
    from pipeline.language_model.generate import prompt_ids
    from pipeline.text.corpora import normalize
    from pipeline.text.tokenize import make_tokenizer

    small_vocab = Vocabulary.load(RunPaths(small_trained[1]).vocab)
    folders = {  # generator_small.toml trained (conftest.py); untrained: sentences, tied weights and a label (two
        # members: model.members), and a stream model (it starts after </s>) with an adaptive softmax
        "trained": generator_folder,
        "conditioned": language_model_run(tmp_path / "conditioned", small_vocab, model={  # an ensemble of two
            "tie_weights": True, "conditioning": "concat", "layers": [{"type": "lstm", "units": 12}], "members": 2}),
        "adaptive": language_model_run(tmp_path / "adaptive", small_vocab, train={"regime": "tbptt"}, model={
            "output": "adaptive", "cutoffs": [40, 150], "layers": [{"type": "gru", "units": 12}]})}
    runs = {name: load_run(folder) for name, folder in folders.items()}
    assert [run.conditioned for run in runs.values()] == [False, True, False]  # what v1/models tells the page
    calls, expected = [], []
    for name, run in runs.items():
        run.export(tmp_path / f"{name}-export")
        tokenizer = make_tokenizer(run.config.tokenize)
        prefixes = [tokenizer.tokenize([normalize(p)])[0][run.config.vectorize.token_field] if p else []
                    for p in PROMPTS]
        labels = ["b", "a", "a", "b"]
        inputs = {"tokens": padded(prefixes)}
        if name == "conditioned":
            inputs["label"] = labels
        calls += [{"path": str(tmp_path / f"{name}-export"), "signature": "next_token", "inputs": inputs},
                  {"path": str(tmp_path / f"{name}-export"), "signature": "vocabulary", "inputs": {}}]
        distributions = []
        for prompt, label in zip(PROMPTS, labels):
            ids, _ = prompt_ids(run, prompt)  # what generate() feeds the model: start token + the prompt's ids
            model_inputs = np.array([ids], np.int32)
            if name == "conditioned":
                model_inputs = (model_inputs, np.array([run.labels.index(label)], np.int32))
            distributions.append(np.asarray(run.model(model_inputs, training=False))[0, -1])
        expected.append(np.array(distributions))
    answers = serve(calls, tmp_path)
    for (name, run), answer, vocabulary, want in zip(runs.items(), answers[::2], answers[1::2], expected):
        assert set(answer["signatures"]) == {"next_token", "serving_default", "vocabulary"}
        got = np.array(answer["outputs"]["probabilities"])
        assert got.shape == (len(PROMPTS), len(run.vocab))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        assert np.abs(want[0] - want[1]).max() > 1e-3  # the prefixes matter
        assert vocabulary["outputs"]["vocabulary"] == run.vocab.tokens
        written = json.loads((tmp_path / f"{name}-export" / EXPORT_METADATA).read_text(encoding="utf-8"))
        assert written["vocabulary"] == run.vocab.tokens
        assert written["start_token"] == ("</s>" if name == "adaptive" else "<s>")
    assert [answer["inputs"] for answer in answers[::2]] == [{"tokens": ["string", [None, None]]},
                                                             {"tokens": ["string", [None, None]],
                                                              "label": ["string", [None]]},
                                                             {"tokens": ["string", [None, None]]}]


# ------------------------------------------------------------------ the command and its errors
@pytest.fixture
def export_command(monkeypatch, capsys):
    """``pipeline export ...`` through the real ``main`` (in this process): exit status, stdout, stderr."""
    if "export" not in cli_module.COMMAND_MODULES:
        monkeypatch.setattr(cli_module, "COMMAND_MODULES", (*cli_module.COMMAND_MODULES, "export"))

    def run_command(*arguments: str) -> tuple[int, str, str]:
        status = cli_module.main(["export", *arguments])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run_command


def one_line_error(status: int, err: str, *fragments: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert all(fragment in errors[0] for fragment in fragments), errors[0]
    return errors[0]


def test_command_writes_and_replaces_exports_and_refuses_other_folders(small_trained, tmp_path, export_command):
    folder = str(small_trained[1])
    out = tmp_path / "exports" / "default"
    status, stdout, err = export_command("--model", folder, "--format", "savedmodel", str(out))
    assert status == 0, err
    assert (out / "saved_model.pb").is_file() and (out / "variables").is_dir() and (out / EXPORT_METADATA).is_file()
    assert "serving_default: tokens string (batch, ?) -> probabilities float32 (batch, 4), label string (batch)" \
        in stdout
    assert "labels: (no inputs) -> labels string (4)" in stdout
    assert export_command("--model", folder, str(out))[0] == 0  # a previous export is replaced without --force
    assert sorted(path.name for path in out.parent.iterdir()) == ["default"]  # no temporary folder left

    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine", encoding="utf-8")
    one_line_error(*export_command("--model", folder, str(other))[::2], "not a previous export", "--force")
    assert (other / "keep.txt").read_text(encoding="utf-8") == "mine"
    assert export_command("--model", folder, "--force", str(other))[0] == 0
    assert not (other / "keep.txt").exists() and (other / "saved_model.pb").is_file()

    one_line_error(*export_command("--model", folder, "--force", folder)[::2], "would replace the run folder")
    one_line_error(*export_command("--model", folder, "--force", str(Path(folder).parent))[::2],
                   "would replace the run folder")
    (tmp_path / "file").write_text("", encoding="utf-8")
    one_line_error(*export_command("--model", folder, str(tmp_path / "file"))[::2], "not a folder")
    one_line_error(*export_command("--model", str(tmp_path / "missing"), str(tmp_path / "x"))[::2],
                   "run folder not found")
    with pytest.raises(SystemExit) as exit_info:  # argparse: usage and exit 2
        export_command("--model", folder, "--format", "onnx", str(tmp_path / "y"))
    assert exit_info.value.code == 2


def test_a_task_without_an_export_is_a_one_line_error(small_trained, tmp_path):
    run = load_run(small_trained[1])
    reading = Run(run.folder, run.model, config_module.from_dict({"model": {"task": "reading"}}, where="test"),
                  run.vocab, run.labels)
    with pytest.raises(PipelineError, match="a reading run cannot export; use a classifier or generator run"):
        reading.export(tmp_path / "out")
    assert not (tmp_path / "out").exists()
