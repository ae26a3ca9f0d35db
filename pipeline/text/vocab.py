"""The vocabulary: word <-> id, built from the training split only.

Id 0 is padding (``<pad>``, masked out by the embedding) and id 1 the unknown
word (``<unk>``); further special tokens (``<s>``, ``</s>`` for language models)
follow, then the words by descending count (ties: alphabetical, so the same
corpus always gives the same ids).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from pipeline import io as artifact_io
from pipeline.errors import PipelineError

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
BOS, EOS = "<s>", "</s>"  # sentence boundaries: what language models start from and predict last
SENTENCE_MARKERS = (BOS, EOS)


class Vocabulary:
    """An ordered list of tokens; ``tokens[i]`` has id ``i``.

    Args:
        tokens: every entry in id order, starting with ``<pad>`` and ``<unk>``.
        counts: training-split count per token (0 for the special tokens).
    """

    def __init__(self, tokens: Sequence[str], counts: dict[str, int] | None = None) -> None:
        if list(tokens[:2]) != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {list(tokens[:2])}")
        self.tokens = list(tokens)
        self.index = {token: position for position, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")
        self.counts = dict(counts or {})

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]], min_count: int = 1, max_size: int = 20000,
              specials: Sequence[str] = ()) -> Vocabulary:
        """Count tokens of ``sequences``; keep those seen ``min_count`` times, at most ``max_size`` entries."""
        return cls.from_counts(Counter(token for sequence in sequences for token in sequence), min_count, max_size,
                               specials)

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], min_count: int = 1, max_size: int = 20000,
                    specials: Sequence[str] = ()) -> Vocabulary:
        """:meth:`build` from tokens already counted (``{token: count}``, e.g. a corpus read a batch at a time)."""
        reserved = [PAD, UNK, *specials]
        words = [w for w, c in counts.items() if c >= min_count and w not in reserved]
        words.sort(key=lambda word: (-counts[word], word))
        tokens = reserved + words[: max(0, max_size - len(reserved))]
        return cls(tokens, {word: counts[word] for word in tokens if word in counts})

    def extended(self, words: Iterable[str]) -> Vocabulary:
        """This vocabulary followed by ``words`` it does not hold yet (in their order, each once; no count)."""
        extra = [word for word in dict.fromkeys(words) if word not in self.index]
        return Vocabulary(self.tokens + extra, self.counts)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; words not in the vocabulary become ``UNK_ID``."""
        index = self.index
        return [index.get(token, UNK_ID) for token in tokens]

    def encode_forms(self, tokens: Sequence[str], *others: Sequence[str]) -> list[int]:
        """Ids of ``tokens``; a word not in the vocabulary takes the id of the first of its ``others`` forms (one
        sequence per form, aligned with ``tokens``, e.g. its norms then its lemmas) that is, else ``UNK_ID``."""
        index = self.index
        ids = []
        for position, token in enumerate(tokens):
            found = index.get(token)
            for forms in others:
                if found is not None:
                    break
                found = index.get(forms[position])
            ids.append(UNK_ID if found is None else found)
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def save(self, path: str | Path) -> None:
        artifact_io.write_json(path, {"tokens": self.tokens, "counts": self.counts})

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        path = Path(path)
        try:
            data = artifact_io.read_json(path)
            return cls(data["tokens"], data.get("counts"))
        except FileNotFoundError:
            raise PipelineError(f"{path}: vocabulary not found; run `pipeline vectorize` first") from None
        except (ValueError, KeyError, TypeError) as error:
            raise PipelineError(f"{path}: not a valid vocabulary file ({error}); "
                                "re-run `pipeline vectorize --force`") from None
