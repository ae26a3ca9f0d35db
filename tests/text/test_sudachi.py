"""The SudachiPy fast path (pipeline.text.sudachi) gives exactly the GiNZA path's tokens.

Both paths are the real ones (ja_ginza loaded once per process, lru_cached): the shipped corpus read through the
project's KNB reader, raw and normalised as ``prepare`` does, under every combination of the filters;
Hypothesis-generated Unicode (mixed scripts, whitespace runs, emoji, half/full width, combining marks, long runs);
texts chosen for spaCy's tag rules that look at the neighbouring token; and the ``tokenize`` stage's
tokens.parquet, byte for byte.
"""

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from text_strategies import EMOJI, HALF_WIDTH_KANA, MIXED
from text_strategies import pieces as unicode_pieces

from pipeline.sections import TokenizeConfig
from pipeline.text import corpora
from pipeline.text.sudachi import SudachiTokenizer, fast_path_applies, in_dictionary, spaced_surfaces
from pipeline.text.tokenize import MAX_INPUT_BYTES, SimpleTokenizer, Tokenizer, load_nlp, make_tokenizer

REPOSITORY = Path(__file__).resolve().parents[2]
STOP_POS = ("ADP", "AUX", "X", "SYM", "PART")
# every combination of the three filters: drop_punct, lowercase, stop_pos
FILTERS = [TokenizeConfig(drop_punct=drop_punct, lowercase=lowercase, stop_pos=stop_pos)
           for drop_punct, lowercase, stop_pos in itertools.product((False, True), (False, True), ((), STOP_POS))]
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WHITESPACE = [" ", "  ", "\u3000", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x85", "\xa0", "\u2028", "\u2009", " \u3000 "]
FULL_WIDTH = "".join(chr(code) for code in range(0xFF01, 0xFF5F))  # ！ to ～: full-width Latin, digits, symbols
COMBINING = ["\u0301", "\u0308", "\u3099", "\u309a", "\u20dd"]
# pieces whose tags trigger spaCy's orth and bigram rules (たり, この/ある, サ変 + する, 形状詞 + だ, 空白 " "/"　")
RULE_WORDS = ["行ったり", "来たり", "この", "ある", "そんな", "勉強", "し", "ている", "静か", "だ", "、", "。", "よ",
              "かもしれない", "ほしい", "さ", "たい", "など", "ほど", "お", "的", "ＡＢＣ", "ｶﾀｶﾅ", "123", "１２３"]
pieces = st.one_of(
    unicode_pieces,  # any code point, emoji, control characters, mixed scripts
    st.sampled_from(WHITESPACE), st.sampled_from(RULE_WORDS), st.sampled_from(EMOJI), st.sampled_from(COMBINING),
    st.text(alphabet=MIXED + HALF_WIDTH_KANA + FULL_WIDTH, min_size=1, max_size=12),
    st.builds(lambda piece, count: piece * count, st.sampled_from([*WHITESPACE, "ー", "あ", "ｱ", "。", "😀"]),
              st.integers(2, 60)),  # runs
)
texts = st.lists(pieces, max_size=25).map("".join)


@pytest.fixture(scope="module")
def knb_raw() -> list[str]:
    """The shipped corpus's sentences as the KNB reader gives them."""
    return corpora.read_knb(REPOSITORY / "corpora" / "knb_blog")["text"].tolist()


@pytest.fixture(scope="module")
def knb_sentences(knb_raw) -> list[str]:
    """The shipped corpus's sentences as ``prepare`` leaves them (normalised, none empty)."""
    return [text for text in map(corpora.normalize, knb_raw) if text]


def assert_same_tokens(settings: TokenizeConfig, batch: list[str]) -> None:
    """The fast path's tokens of ``batch`` equal the GiNZA path's, text by text (or both raise the same error)."""
    outcomes = []
    for tokenizer in (Tokenizer(settings), SudachiTokenizer(settings)):
        try:
            outcomes.append(tokenizer.tokenize(batch))
        except Exception as error:  # noqa: BLE001 - an error of GiNZA's must be the fast path's too
            outcomes.append(type(error))
    ginza, fast = outcomes
    if isinstance(ginza, list) and isinstance(fast, list):
        different = [(text, expected, got) for text, expected, got in zip(batch, ginza, fast, strict=True)
                     if expected != got]
        assert not different, f"{len(different)} text(s) differ, first: {different[0]}"
    assert ginza == fast


def test_fast_path_is_the_default_where_it_is_exact():
    assert type(make_tokenizer(TokenizeConfig())) is SudachiTokenizer
    assert type(make_tokenizer(TokenizeConfig(drop_punct=True, processes=2))) is SudachiTokenizer
    assert type(make_tokenizer(TokenizeConfig(method="char"))) is SimpleTokenizer
    # GiNZA with its statistical components (make_tokenizer gives Tokenizer): the morphologizer's POS, NER
    assert not fast_path_applies(TokenizeConfig(pos_source="ud"))
    assert not fast_path_applies(TokenizeConfig(entities=True))
    assert not fast_path_applies(TokenizeConfig(method="whitespace"))


def test_fast_path_uses_ginzas_own_sudachi_tokenizer():
    """Dictionary and split mode are those of the loaded model (ja_ginza's config: C), not chosen here; the model
    is loaded without its vocabulary (vectors, strings), which the full model's tokens do not depend on."""
    fast = SudachiTokenizer(TokenizeConfig())
    alone, full = load_nlp("ja_ginza", (), vocabulary=False), load_nlp("ja_ginza", ())
    assert fast.sudachi is alone.tokenizer.tokenizer and alone.vocab.vectors.shape == (0, 0)
    assert full.vocab.vectors.shape[0] > 0 and len(full.vocab.strings) > 100_000 > len(alone.vocab.strings)
    assert fast.split_mode == full.tokenizer.split_mode == "C"
    assert fast.tokenize(["選挙管理委員会に行った。"])[0]["surface"][0] == "選挙管理委員会"  # mode C: one word


def test_examples_of_the_tag_rules():
    """Tokens whose POS spaCy decides from their surface (この, ある) or a neighbour's tag (as GiNZA's Doc has them).

    勉強 (サ変可能) + し (非自立可能): VERB + AUX; し + たり (副助詞) make たり PART, and then たり, whose POS the pair
    before it set, does not look at its own next tag: する stays AUX (副助詞 + 非自立可能 would make it VERB).
    """
    [tokens] = SudachiTokenizer(TokenizeConfig()).tokenize(["この本を読んだり、勉強したりする。静かだ 。ある日"])
    assert list(zip(tokens["surface"], tokens["pos"], strict=True)) == [
        ("この", "DET"), ("本", "NOUN"), ("を", "ADP"), ("読ん", "VERB"), ("だり", "PART"), ("、", "PUNCT"),
        ("勉強", "VERB"), ("し", "AUX"), ("たり", "PART"), ("する", "AUX"), ("。", "PUNCT"),
        ("静か", "ADJ"), ("だ", "AUX"), ("。", "PUNCT"), ("ある", "PRON"), ("日", "NOUN")]


# one dictionary entry under several surfaces (half/full width, case), and morphemes whose word id is shared by
# different words: OOV ones (dictionary 0xF: unknown katakana, emoji, numbers JoinNumeric joined and normalised)
# and katakana JoinKatakanaOov joined (entry 0x0FFFFFFF)
SHARED_WORD_IDS = ["ｶﾀｶﾅ", "カタカナ", "ｳﾞｧｲｵﾘﾝ", "ヴァイオリン", "Ａｐｐｌｅ", "apple", "ＡＰＰＬＥ", "アブラカダブラ",
                   "パピプペポピ", "ｱﾌﾞﾗｶﾀﾞﾌﾞﾗ", "é", "😀", "🇯🇵", "１２３", "4,560", "三千", "一二三万円", "3.14", "ﾊﾝｶｸ",
                   "ﾊﾝｶｸﾓｼﾞ", "ﾃｽﾄﾃｽﾄ", "…", "ＡＢＣ！？…"]


def test_in_dictionary_word_ids():
    """SudachiPy word ids: 4 bits of dictionary (0 system, 1-14 user, 0xF OOV), 28 bits of entry."""
    assert in_dictionary(0x0004_5171) and in_dictionary(0x1000_0005)  # system, first user dictionary
    assert not in_dictionary(0xF000_0004) and not in_dictionary(0xFFFF_FFFF)  # OOV, JoinNumeric
    assert not in_dictionary(0x0FFF_FFFF) and not in_dictionary(0x1FFF_FFFF)  # JoinKatakanaOov (system, user)


def test_entries_cached_by_word_id_give_every_text_its_own_fields():
    """The (tag, lemma, norm) cache by word id: an entry seen under one surface gives the same fields under another,
    and morphemes whose word id names no entry are read each time, so two OOV words never share their fields; after
    a pass over the texts twice (the cache warm the second time) every token equals the GiNZA path's."""
    fast = SudachiTokenizer(TokenizeConfig())
    words = [(morpheme.word_id(), morpheme.dictionary_form(), morpheme.normalized_form())
             for text in SHARED_WORD_IDS for morpheme in fast.sudachi.tokenize(text)]
    fields_by_id = {}
    for word_id, lemma, norm in words:
        fields_by_id.setdefault(word_id, set()).add((lemma, norm))
    shared = {word_id for word_id, fields in fields_by_id.items() if len(fields) > 1}
    # the texts hold the cases: OOV ids and a joined katakana id each shared by different words
    assert {0xF000_0004, 0xFFFF_FFFF, 0x0FFF_FFFF} <= shared
    texts = SHARED_WORD_IDS + SHARED_WORD_IDS[::-1] + ["".join(SHARED_WORD_IDS)]
    assert fast.tokenize(texts) == Tokenizer(TokenizeConfig()).tokenize(texts)
    assert fast._entries and not shared & set(fast._entries)  # only dictionary entries cached


def test_surfaces_from_one_string_only_where_the_tokenizer_projects_nothing():
    """str(MorphemeList) joins the text of the morphemes; surface() gives the tokenizer's projection of it."""
    from sudachipy import Dictionary

    assert spaced_surfaces(SudachiTokenizer(TokenizeConfig()).sudachi)
    dictionary = Dictionary()
    for projection in ("normalized", "reading", "dictionary", "dictionary_and_surface", "normalized_and_surface",
                       "normalized_nouns"):
        assert not spaced_surfaces(dictionary.create(mode="C", projection=projection)), projection


@pytest.mark.parametrize("filters", FILTERS, ids=lambda s: f"punct{s.drop_punct:d}-lower{s.lowercase:d}-"
                                                         f"stop{bool(s.stop_pos):d}")
def test_shipped_corpus_token_for_token(filters, knb_sentences):
    assert_same_tokens(filters, knb_sentences)


def test_shipped_corpus_as_read_token_for_token(knb_raw):
    """Before normalisation: full-width spaces, half-width kana, runs of whitespace (classify and serve normalise
    too, but the tokenizer must not depend on it)."""
    assert_same_tokens(TokenizeConfig(), knb_raw)


@pytest.mark.parametrize("text", [
    "", " ", "\u3000", "  \t ", "a  b\u3000c\td ", " 京都 に\u3000行った 。 ", "ＡＢＣ！？…", "行ったり 来たり",
    "その\u3000本", "ある 日", "\u3000この", "勉強 しました", "静か  だ", "e\u0301\u3099", "👨‍👩‍👧 と 🇯🇵",
    "x\u200by\ufeffz", "\u3000" * 300 + "あ",
])
def test_whitespace_edges(text):
    for filters in FILTERS:
        assert_same_tokens(filters, [text])


@pytest.mark.parametrize("text", [
    "京都 \u3000" * 4_901,  # 49,010 bytes, no sentence end: cut by characters, inside the whitespace
    "京都に行った。" * 2_340 + " ABC ",  # 49,145 bytes: cut after a sentence end, the rest starts a new chunk
])
def test_chunks_of_long_texts(text):
    assert len(text.encode()) > MAX_INPUT_BYTES
    assert_same_tokens(TokenizeConfig(drop_punct=True, lowercase=True), [text])


@PROPERTY
@given(batch=st.lists(texts, min_size=1, max_size=5), normalised=st.booleans(),
       filters=st.sampled_from(FILTERS))
def test_arbitrary_unicode_token_for_token(batch, normalised, filters):
    assert_same_tokens(filters, [corpora.normalize(text) for text in batch] if normalised else batch)


def test_two_processes_give_the_tokens_of_one(knb_sentences):
    texts = knb_sentences[:300]
    two = SudachiTokenizer(TokenizeConfig(processes=2, batch_size=64))
    one = SudachiTokenizer(TokenizeConfig(batch_size=64))
    assert two.tokenize(texts) == one.tokenize(texts) == Tokenizer(TokenizeConfig()).tokenize(texts)
    assert two.token_lists(texts) == one.token_lists(texts)  # the stage's lists (a single shard keeps its workers)


def test_tokenize_stage_writes_ginzas_table_byte_for_byte(tmp_path):
    """tokens.parquet of the real stage (the fast path by default) has the bytes GiNZA's tokens give."""
    from helpers import knb_config

    from pipeline.front_end import tokenize_job
    from pipeline.paths import Paths
    from pipeline.stages import run_stage
    from pipeline.text.shards import tokenize_stage

    config = knb_config("small", tmp_path / "work", tmp_path / "models")
    run_stage("tokenize", config)
    paths = Paths.from_config(config)
    ginza_tokens = tmp_path / "ginza-tokens.parquet"  # the stage's shards and merge, GiNZA's tokenizer
    tokenize_stage(tokenize_job(config, paths), ginza_tokens, Tokenizer(config.tokenize))
    assert paths.tokens.read_bytes() == ginza_tokens.read_bytes()
