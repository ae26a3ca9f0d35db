"""Tests of pipeline.classifier.export: the char n-gram ensemble member in TensorFlow ops gives the member's own
probabilities (scikit-learn's features). The whole exported classifier is tested in tests/serve/test_export.py."""

import numpy as np
import pytest
import tensorflow as tf

from pipeline.classifier.ensemble import CharNgramModel, char_vectorizer
from pipeline.classifier.export import CharNgramGraph

TRAIN = ["京都の寺で紅葉を見た", "スマホの電池が切れた", "野球の試合に勝った", "嵐山で湯豆腐", "新しいケータイ iPhone",
         "サッカーの決勝戦 World Cup", "清水寺へ行きました", "充電器を買った USB", "延長戦でサヨナラ勝ち"] * 2
# unseen n-grams, upper case (the analyzer lower-cases), runs of ASCII and ideographic spaces, nothing known, empty
TEXTS = ["京都の寺", "IPHONE の電池", "World  Cup\u3000\u3000決勝", "ΣΟΦΙΑ", "😀", "", "寺 寺 寺 寺"]


def member(classes: int) -> CharNgramModel:
    from sklearn.linear_model import LogisticRegression

    vectorizer = char_vectorizer()
    classifier = LogisticRegression(max_iter=2000, C=3.0)
    classifier.fit(vectorizer.fit_transform(TRAIN), np.arange(len(TRAIN)) % classes)
    return CharNgramModel.from_fitted(vectorizer, classifier, 3.0)


@pytest.mark.parametrize("classes", [2, 3])
def test_graph_probabilities_are_the_members(classes):
    fitted = member(classes)
    graph_member = CharNgramGraph(fitted)
    traced = tf.function(graph_member.probabilities, input_signature=[tf.TensorSpec([None], tf.string)])
    expected = fitted.probabilities(TEXTS)
    for probabilities in (graph_member.probabilities(tf.constant(TEXTS)), traced(tf.constant(TEXTS))):
        assert probabilities.dtype == tf.float64 and probabilities.shape == (len(TEXTS), classes)
        np.testing.assert_allclose(probabilities.numpy(), expected, rtol=0, atol=1e-12)
    assert traced(tf.constant([], tf.string)).shape == (0, classes)
