"""Hypothesis strategies for arbitrary text a user may feed the pipeline (importable as ``text_strategies``).

Emoji (with ZWJ sequences and skin tones), control characters, half-width kana, mixed scripts,
combining marks, and 100,000-character lines built by repetition (cheap to generate).
"""

from hypothesis import strategies as st

HALF_WIDTH_KANA = "".join(chr(code) for code in range(0xFF61, 0xFFA0))
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧", "🇯🇵", "❤️", "🍣", "⚽"]
CONTROL = [chr(code) for code in (*range(0x00, 0x20), 0x7F, 0x85, 0x200B, 0x200D, 0x2028, 0x2029, 0xFEFF)]
MIXED = "京都の紅葉東京スマホ試合ひらがなカタカナABCxyz123０１２ÀéßΩЖ한국어עבריתالعربية\u0301\u3099"

pieces = st.one_of(
    st.text(max_size=30),  # any code point but surrogates
    st.text(alphabet=HALF_WIDTH_KANA + MIXED, max_size=30),
    st.lists(st.sampled_from(EMOJI + CONTROL + list(MIXED)), max_size=30).map("".join),
)
long_lines = st.builds(lambda piece, count: (piece * count)[:100_000],
                       st.text(alphabet=HALF_WIDTH_KANA + MIXED + "".join(EMOJI) + "。 ", min_size=1, max_size=12),
                       st.integers(8_000, 100_000))


def is_line_break(char: str) -> bool:
    """Whether ``str.splitlines`` breaks at ``char`` (\\n, \\r, \\x0b, \\x1c, \\x85, \\u2028, ...)."""
    return len(f"a{char}b".splitlines()) > 1


# One line of text: every line break that str.splitlines() knows turned into a space.
lines = st.one_of(pieces, pieces, pieces, long_lines).map(
    lambda text: "".join(" " if is_line_break(char) else char for char in text))
