"""Property-based tests (Hypothesis) of pipeline.language_model.generate: any prompt (``text_strategies``:
emoji, control characters, 100,000-character lines, mixed scripts, half-width kana) gives samples, no crash.

The run is built in memory: an untrained one-layer LSTM language model over a tiny vocabulary, with the
real GiNZA tokenizer reading the prompt. What ``generate`` takes does not depend on the weights, and no
training keeps this module at a few seconds.

Prompts are cut at 200 characters: ``generate`` runs the model over the whole text at every step, so a
100,000-character prompt takes minutes (about 22 s for 5 tokens after a 10,000-character one on 2 CPU
cores); the 100,000-character lines are tested on the tokenizer and ``classify``.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from text_strategies import lines

from pipeline import config as config_module
from pipeline.language_model.generate import Sampling, generate
from pipeline.language_model.model import SPECIALS, build_generator
from pipeline.runs import Run
from pipeline.text.vocab import Vocabulary

PROPERTY = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    config = config_module.from_dict({"run_name": "generator", "vectorize": {"vectors": "none"},
                                      "model": {"task": "generator", "embedding_dim": 8,
                                                "layers": [{"type": "lstm", "units": 8}]}})
    vocab = Vocabulary(["<pad>", "<unk>", *SPECIALS, "京都", "の", "紅葉", "。"])
    matrix = np.random.default_rng(0).normal(0.0, 0.5, size=(len(vocab), 8)).astype(np.float32)
    model = build_generator(config.model, matrix, seed=0)
    return Run(tmp_path_factory.mktemp("generate-properties"), model, config, vocab, [])


@PROPERTY
@given(prompt=lines.map(lambda line: line[:200]), seed=st.integers(0, 2**31 - 1))
def test_generate_continues_any_prompt(run, prompt, seed):
    samples = generate(run, prompt, Sampling(max_tokens=3, temperature=0.8, top_k=3), num=2, seed=seed)
    assert len(samples) == 2
    for sample in samples:
        assert sample["prompt"] == prompt and isinstance(sample["text"], str)
        assert 0 <= len(sample["tokens"]) <= 3 and len(sample["probabilities"]) == len(sample["tokens"])
