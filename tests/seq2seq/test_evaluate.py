"""Tests of pipeline.seq2seq.evaluate: the printed summary says plainly whether the model beats the kana copy."""

from pipeline.seq2seq.evaluate import summary


def metrics(model_cer: float) -> dict:
    scores = {"cer": model_cer, "exact_match": 0.1, "n": 10}
    return {"split": "test", "attention": "additive", "beam_size": 4, "length_penalty": 0.6, "greedy": scores,
            "beam": scores, "kana_copy": {"cer": 0.5, "exact_match": 0.0, "n": 10},
            "examples": [{"text": "今日", "reference": "キョウ", "reading": "キョウ"}]}


def test_summary_names_the_gap_and_the_verdict():
    text = summary(metrics(0.2))
    assert "test character error rate 0.200" in text and "kana-copy baseline: character error rate 0.500" in text
    assert "-0.300 (the model beats the baseline)" in text
    assert "今日 → キョウ" in text
    assert "LOSES to the kana-copy baseline" in summary(metrics(0.7))
