"""Tests of pipeline.serve.component: the spaCy component ``ja_rnn_textcat`` gives ``run.classify``'s probabilities
from the Doc's own tokens (ensemble, the run's token settings, half-width text, texts past train.max_length), is
found through the ``spacy_factories`` entry point, refuses runs and pipelines that do not fit, and saves."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import spacy
from helpers import REPOSITORY, knb_config

from pipeline.classifier.train import train_classifier
from pipeline.errors import PipelineError
from pipeline.paths import Paths
from pipeline.runs import load_run
from pipeline.serve.component import FACTORY, ComponentError, doc_tokens
from pipeline.text.corpora import normalize

LONG = "週末は友達と嵐山へ行って、竹林の道を歩いてから湯豆腐を食べました。" * 12  # past train.max_length (100)
MAPPED = ["週末は嵐山で紅葉を見てから湯豆腐を食べました。",
          "新しいｽﾏﾎのﾊﾞｯﾃﾘｰがすぐ切れて困っています！",  # half-width katakana, a full-width mark
          "ｻｯｶｰの試合で延長戦になった",
          "ＡＢＣ１２３の新機種はiPhoneより安い？ 京都 で買った",
          LONG]
# what normalisation changes around Sudachi's words (a URL, a line break, an ideographic space): tokenized again
AGAIN = ["詳しくは https://example.com/kyoto を見てください。\n明日も嵐山に行きます", "京都の\u3000寺"]
SENTENCES = [*MAPPED, *AGAIN, "", "   "]  # the last two: nothing to classify, cats = {}


def run_settings(folder: Path, **tokenize) -> Path:
    """``folder``'s run with its config.json's ``[tokenize]`` (and ``vectorize.token_field``) changed."""
    path = folder / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    token_field = tokenize.pop("token_field", None)
    config["tokenize"].update(tokenize)
    if token_field:
        config["vectorize"]["token_field"] = token_field
    path.write_text(json.dumps(config), encoding="utf-8")
    return folder


def ginza_with(folder: Path, **load_options):
    nlp = spacy.load("ja_ginza", **load_options)
    nlp.add_pipe(FACTORY, config={"model": str(folder)})
    return nlp


def assert_cats_are_classify(docs, results, labels) -> None:
    assert len(docs) == len(results)
    for doc, result in zip(docs, results, strict=True):
        if "error" in result:
            assert doc.cats == {}, doc.text
            continue
        assert list(doc.cats) == labels
        np.testing.assert_allclose([doc.cats[label] for label in labels],
                                   [result["probabilities"][label] for label in labels], rtol=0, atol=1e-6,
                                   err_msg=doc.text[:40])


@pytest.fixture(scope="module")
def small_ensemble(small_work_dir, tmp_path_factory) -> Path:
    """A small run with the char n-gram member, its mixture weight set to 0.35 (both members count)."""
    config = knb_config("small", small_work_dir, tmp_path_factory.mktemp("ensemble-models"),
                        'model.ensemble="char_ngram"', 'run_name="small_ensemble"', "train.epochs=1")
    train_classifier(config, Paths.from_config(config))
    folder = Paths.from_config(config).run
    settings = json.loads((folder / "ensemble.json").read_text(encoding="utf-8"))
    (folder / "ensemble.json").write_text(json.dumps({**settings, "weight": 0.35}), encoding="utf-8")
    return folder


@pytest.fixture
def run_copy(small_trained, tmp_path) -> Path:
    return Path(shutil.copytree(small_trained[1], tmp_path / "run"))


# ------------------------------------------------------------------ same probabilities as run.classify
def test_cats_are_run_classify_and_a_batch_is_one_model_call(small_trained, monkeypatch):
    from pipeline.classifier import predict

    folder = small_trained[1]
    run = load_run(folder)
    expected = run.classify(SENTENCES)
    nlp = ginza_with(folder)
    component = nlp.get_pipe(FACTORY)
    calls, retokenized = [], []
    classify_tokens, tokenize_texts = component.run.classify_tokens, predict.tokenize_texts
    monkeypatch.setattr(component.run, "classify_tokens", lambda texts, *rest, **options: (
        calls.append(len(texts)) or classify_tokens(texts, *rest, **options)))
    monkeypatch.setattr(predict, "tokenize_texts", lambda run, texts: (
        retokenized.extend(texts) or tokenize_texts(run, texts)))
    docs = list(nlp.pipe(SENTENCES, batch_size=4))
    assert_cats_are_classify(docs, expected, run.labels)
    assert calls == [4, 4, 1]  # nlp.pipe's batches, one classify_tokens (one model pass) each
    assert retokenized == [normalize(text) for text in AGAIN]  # the others' tokens are the Docs' own
    assert all(abs(sum(doc.cats.values()) - 1) < 1e-5 for doc in docs if doc.cats)
    for text, doc in zip(MAPPED[:2], docs[:2]):  # one Doc at a time: the same (a batch of 1 may round the last bit
        # of a float32 otherwise, as oneDNN does on CPUs without AVX-512)
        alone = nlp(text).cats
        assert alone.keys() == doc.cats.keys()
        assert alone == pytest.approx(doc.cats, rel=1e-6, abs=1e-7)


def test_the_docs_tokens_are_the_run_tokenizers(small_run):
    """Field by field, half-width and full-width forms and a text past train.max_length included."""
    from pipeline.classifier.predict import tokenize_texts

    nlp = spacy.load("ja_ginza")  # morphologizer included: the POS is still the tokenizer's
    cleaned, expected = tokenize_texts(small_run, MAPPED)
    for doc, text, tokens in zip(nlp.pipe(MAPPED), cleaned, expected, strict=True):
        assert doc_tokens(doc, text, small_run.config.tokenize) == tokens
    assert len(expected[-1]["surface"]) > small_run.config.train.max_length
    assert "スマホ" in expected[1]["surface"]  # NFKC of the Doc's ｽﾏﾎ
    for text in AGAIN:
        assert doc_tokens(nlp(text), normalize(text), small_run.config.tokenize) is None


def test_ensemble_cats_are_run_classify(small_ensemble):
    from pipeline.classifier.predict import classify

    run = load_run(small_ensemble)
    assert "ensemble" in run.extras
    nlp = ginza_with(small_ensemble)
    docs = list(nlp.pipe(SENTENCES, batch_size=3))
    assert_cats_are_classify(docs, classify(run, SENTENCES), run.labels)
    # the char member reads the normalised text: its half-width text is another input without it
    member, _ = run.extras["ensemble"]
    assert not np.allclose(member.probabilities([MAPPED[2]]), member.probabilities([normalize(MAPPED[2])]))


def test_the_runs_token_settings_apply(run_copy):
    """drop_punct, stop_pos, lowercase and vectorize.token_field = "lemma" of the run's config."""
    folder = run_settings(run_copy, drop_punct=True, stop_pos=["ADP", "AUX"], lowercase=True, token_field="lemma")
    run = load_run(folder)
    texts = [*SENTENCES, "。、！", "ＡＢＣのiPhone"]  # punctuation alone: no token left, cats = {}
    docs = list(ginza_with(folder).pipe(texts))
    results = run.classify(texts)
    assert "error" in results[len(SENTENCES)] and docs[len(SENTENCES)].cats == {}
    assert_cats_are_classify(docs, results, run.labels)


def test_ud_pos_comes_from_the_pipelines_morphologizer(run_copy):
    folder = run_settings(run_copy, pos_source="ud", stop_pos=["ADP", "NOUN"])  # the POS decides the tokens
    run = load_run(folder)
    docs = list(ginza_with(folder).pipe(SENTENCES[:4]))
    assert_cats_are_classify(docs, run.classify(SENTENCES[:4]), run.labels)
    from pipeline.classifier.predict import tokenize_texts

    cleaned, tokens = tokenize_texts(run, SENTENCES[:1])  # a normalised text: the Doc's own tokens and UD POS
    assert doc_tokens(docs[0], cleaned[0], run.config.tokenize) == tokens[0]
    assert doc_tokens(docs[1], normalize(SENTENCES[1]), run.config.tokenize) is None  # half-width: tokenized again
    with pytest.raises(ComponentError, match="morphologizer"):  # no morphologizer, no UD POS
        spacy.blank("ja", config={"nlp": {"tokenizer": {"split_mode": "C"}}}).add_pipe(
            FACTORY, config={"model": str(folder)})


def test_a_blank_japanese_pipeline_with_the_runs_split_mode_matches(small_trained):
    nlp = spacy.blank("ja", config={"nlp": {"tokenizer": {"split_mode": "C"}}})
    nlp.add_pipe(FACTORY, config={"model": str(small_trained[1])})
    run = load_run(small_trained[1])
    assert_cats_are_classify(list(nlp.pipe(MAPPED)), run.classify(MAPPED), run.labels)


# ------------------------------------------------------------------ the entry point
def test_spacy_finds_the_factory_in_a_fresh_process(small_trained):
    """A script that imports only spaCy: the spacy_factories entry point registers the factory."""
    text = MAPPED[1]
    code = ("import json, sys, spacy\n"
            "nlp = spacy.load('ja_ginza')\n"
            "before = 'pipeline' in sys.modules and 'tensorflow' in sys.modules\n"
            f"nlp.add_pipe('{FACTORY}', config={{'model': sys.argv[1]}})\n"
            "print(json.dumps({'before': before, 'names': nlp.pipe_names, 'cats': nlp(sys.argv[2]).cats}))\n")
    result = subprocess.run([sys.executable, "-c", code, str(small_trained[1]), text], capture_output=True,
                            text=True, encoding="utf-8", timeout=300, cwd=REPOSITORY.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["before"] is False  # spaCy imported our module light: TensorFlow came with add_pipe
    assert printed["names"][-1] == FACTORY
    run = load_run(small_trained[1])
    expected = run.classify([text])[0]["probabilities"]
    assert list(printed["cats"]) == run.labels
    np.testing.assert_allclose([printed["cats"][label] for label in run.labels],
                               [expected[label] for label in run.labels], rtol=0, atol=1e-6)


# ------------------------------------------------------------------ what add_pipe refuses
def write_generator_run(folder: Path) -> Path:
    """A real (untrained) language-model run folder."""
    from pipeline import config as config_module
    from pipeline.language_model.model import build_generator
    from pipeline.paths import RunPaths
    from pipeline.runs import write_run_metadata
    from pipeline.text.vocab import Vocabulary

    config = config_module.from_dict({"run_name": folder.name, "vectorize": {"vectors": "none"},
                                      "model": {"task": "generator", "layers": [{"type": "gru", "units": 4}]}})
    vocab = Vocabulary(["<pad>", "<unk>", "<s>", "</s>", "京都", "の"])
    model = build_generator(config.model, np.zeros((len(vocab), 8), np.float32), seed=0)
    folder.mkdir(parents=True)
    model.save(RunPaths(folder).model)
    write_run_metadata(folder, config, vocab, [])
    return folder


def refused(nlp, folder) -> str:
    with pytest.raises(ComponentError) as raised:
        nlp.add_pipe(FACTORY, config={"model": str(folder)})
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, PipelineError)
    message = str(raised.value)
    assert message.startswith(f"{FACTORY}: ") and "\n" not in message
    assert FACTORY not in nlp.pipe_names
    return message


def test_add_pipe_refuses_a_run_or_pipeline_that_does_not_fit(small_trained, tmp_path):
    ginza = spacy.load("ja_ginza")
    assert "generator run, not a classifier" in refused(ginza, write_generator_run(tmp_path / "generator"))
    assert "not found" in refused(ginza, tmp_path / "missing")
    for method in ("char", "whitespace"):
        folder = run_settings(Path(shutil.copytree(small_trained[1], tmp_path / method)), method=method)
        assert f"tokenize.method = '{method}'" in refused(ginza, folder)
    # spaCy's own Japanese default splits in mode A; the run was tokenized by ja_ginza in mode C
    assert "Sudachi mode A" in refused(spacy.blank("ja"), small_trained[1])
    assert "not the SudachiPy JapaneseTokenizer" in refused(spacy.blank("en"), small_trained[1])
    ginza.get_pipe("compound_splitter").split_mode = "A"  # GiNZA's way to split 選挙管理委員会 into short words
    assert "compound_splitter" in refused(ginza, small_trained[1])
    ginza.get_pipe("compound_splitter").split_mode = None
    ginza.add_pipe("merge_entities")
    assert "merge_entities" in refused(ginza, small_trained[1])


# ------------------------------------------------------------------ saving
def test_to_disk_and_back_reference_the_same_run(run_copy, tmp_path):
    nlp = ginza_with(run_copy)
    expected = [doc.cats for doc in nlp.pipe(MAPPED[:3])]
    nlp.to_disk(tmp_path / "saved")
    reference = json.loads((tmp_path / "saved" / FACTORY / "run.json").read_text(encoding="utf-8"))
    assert reference["model"] == str(run_copy.resolve()) and reference["labels"] == load_run(run_copy).labels
    again = spacy.load(tmp_path / "saved")
    assert again.pipe_names == nlp.pipe_names
    assert [doc.cats for doc in again.pipe(MAPPED[:3])] == expected
    component = nlp.get_pipe(FACTORY)
    saved_bytes = component.to_bytes()
    assert component.from_bytes(saved_bytes) is component  # the same run: accepted
    # the run folder retrained since: refused, not silently another model
    labels = json.loads((run_copy / "labels.json").read_text(encoding="utf-8"))
    (run_copy / "labels.json").write_text(json.dumps(labels[::-1]), encoding="utf-8")
    with pytest.raises(ComponentError, match="not the run this pipeline was saved with"):
        spacy.load(tmp_path / "saved")
    with pytest.raises(ComponentError, match="not the run this pipeline was saved with"):
        ginza_with(run_copy).get_pipe(FACTORY).from_bytes(saved_bytes)


def test_the_module_is_light_to_import():
    """spaCy imports it whenever it makes a pipeline: no TensorFlow, no run loading."""
    code = "import sys, spacy; spacy.blank('ja'); print(sorted(m for m in ('tensorflow', 'keras', " \
           "'pipeline.serve.component') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "['pipeline.serve.component']", result.stderr[-2000:]
