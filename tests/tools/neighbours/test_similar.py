"""Tests of ``pipeline.tools.neighbours.similar``: cosine neighbours by one matrix product, forms, excluded rows."""

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.tools.neighbours.similar import VectorTable, nearest, similar


def table() -> VectorTable:
    words = ["<pad>", "犬", "猫", "自動車", "薬", "剤"]
    matrix = np.array([[0, 0], [1, 0], [2, 0.2], [0, 3], [1, 1], [0.9, 1.1]], dtype=np.float32)
    index = {word: row for row, word in enumerate(words)} | {"いぬ": 1}  # an alias sharing row 1
    return VectorTable.from_matrix(words, matrix, index, "test", excluded_rows=[0])


def test_rows_are_unit_vectors_and_the_zero_row_stays_zero():
    unit = table().unit_vectors
    np.testing.assert_allclose(np.linalg.norm(unit[1:], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(unit[0], [0, 0])


def test_nearest_is_cosine_best_first_without_the_query_or_excluded_rows():
    found = nearest(table(), 1, top=10)  # 犬 = (1, 0)
    assert [word for word, _ in found] == ["猫", "薬", "剤", "自動車"]
    assert found[0][1] == pytest.approx(2 / np.hypot(2, 0.2))
    assert found[-1][1] == pytest.approx(0.0, abs=1e-7)
    assert nearest(table(), 4, top=1) == [("剤", pytest.approx(float(np.dot([1, 1], [0.9, 1.1])
                                                                    / np.hypot(1, 1) / np.hypot(0.9, 1.1))))]
    assert [word for word, _ in nearest(table(), 1, top=4, characters_only=True)] == ["猫", "薬", "剤"]


def test_forms_aliases_and_unknown_words():
    forms = {"イヌ": ("犬", "犬"), "くるま": ("", "自動車")}.get
    results = similar(table(), ["いぬ", "イヌ", "くるま"], top=1, forms=lambda word: forms(word, ("", "")))
    assert [(r["found_as"], r["form"], r["row_word"]) for r in results] == [
        ("surface", "いぬ", "犬"), ("norm", "犬", "犬"), ("lemma", "自動車", "自動車")]
    with pytest.raises(PipelineError, match="'馬' is not in the vectors of test"):
        similar(table(), ["馬"], forms=lambda word: ("", ""))
