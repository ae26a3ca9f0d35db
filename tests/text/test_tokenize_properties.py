"""Property-based tests (Hypothesis) of pipeline.text.tokenize with the real GiNZA model: arbitrary Unicode
(``text_strategies``: emoji, control characters, 100,000-character lines, mixed scripts, half-width kana)
never crashes the tokenizer, and every text that has something left after normalisation gets tokens.

GiNZA is loaded once per process (``load_nlp`` caches it); few examples keep the module at a few seconds.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from text_strategies import lines

from pipeline.sections import TokenizeConfig
from pipeline.text.corpora import normalize
from pipeline.text.tokenize import FIELDS, Tokenizer, make_tokenizer

PROPERTY = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer(TokenizeConfig())


def texts_with_something_left(raw: list[str]) -> list[str]:
    """What ``prepare`` and ``classify`` hand the tokenizer: normalised, non-empty texts."""
    return [text for text in map(normalize, raw) if text]


@PROPERTY
@given(raw=st.lists(lines, min_size=1, max_size=6))
def test_ginza_gives_tokens_for_every_text(tokenizer, raw):
    texts = texts_with_something_left(raw)
    results = tokenizer.tokenize(texts)
    assert len(results) == len(texts)  # one result a text, in order: nothing is dropped
    for text, result in zip(texts, results):
        assert set(FIELDS) <= set(result)
        assert len({len(result[field]) for field in FIELDS}) == 1
        assert result["surface"], f"no tokens for {text[:80]!r}"
        assert all(isinstance(word, str) for word in result["surface"])


@PROPERTY
@given(raw=st.lists(lines, min_size=1, max_size=6), method=st.sampled_from(["char", "whitespace"]))
def test_simple_tokenizers_give_tokens_for_every_text(raw, method):
    texts = texts_with_something_left(raw)
    results = make_tokenizer(TokenizeConfig(method=method)).tokenize(texts)
    assert len(results) == len(texts) and all(result["surface"] for result in results)


@pytest.mark.parametrize("text", ["\x00", "\x07", "\x7f", "\u200b", "\u200d", "\ufeff", "\ue000", "\U000e0001",
                                  "👨‍👩‍👧", "ｶﾞｷﾞｸﾞ", "e\u0301", "ｱ" * 100_000])
def test_characters_that_are_easy_to_lose_become_tokens(tokenizer, text):
    assert tokenizer.tokenize([normalize(text)])[0]["surface"]
