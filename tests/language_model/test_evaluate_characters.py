"""Per-character perplexity (pipeline.language_model.evaluate.predicted_characters): the characters that the
scored tokens spell, the same whichever tokenizer cut the text."""

import math

from pipeline.language_model.evaluate import predicted_characters


def test_characters_count_the_predicted_tokens_and_one_per_end_of_sentence():
    # 京都 に 行っ た 。 -> 7 characters + </s>; the second sentence is cut at 3 tokens: no </s> predicted
    assert predicted_characters([["京都", "に", "行っ", "た", "。"]], max_length=10) == 8
    assert predicted_characters([["京都", "に", "行っ", "た", "。"]], max_length=3) == 5
    assert predicted_characters([["京都", "に", "行っ", "た", "。"]], max_length=5) == 7  # 5 tokens, no </s>


def test_the_same_text_gives_the_same_characters_for_words_and_pieces():
    words = [["iPhone", "を", "買っ", "た"], ["京都", "。"]]
    pieces = [["iP", "hone", "\u2581を", "買", "った"], ["京", "都", "。"]]  # SentencePiece: ▁ marks the space
    assert predicted_characters(words, 64) == predicted_characters(pieces, 64) == len("iPhoneを買った京都。") + 2


def test_per_character_perplexity_is_the_token_perplexity_rescaled():
    """exp(NLL / characters) = perplexity ** (tokens / characters): fewer, longer tokens, higher per-token figure."""
    log_probabilities = [math.log(0.25)] * 6  # 5 tokens + </s>
    characters = predicted_characters([["京都", "に", "行っ", "た", "。"]], 64)
    per_token = math.exp(-sum(log_probabilities) / 6)
    assert math.isclose(math.exp(-sum(log_probabilities) / characters), per_token ** (6 / characters))
