"""A classifier run as a TensorFlow graph: what :meth:`pipeline.runs.Run.export` saves for TensorFlow Serving.

Signature ``serving_default`` (a batch of texts, already tokenized by the run's tokenizer):

* inputs
    * ``tokens``: ``tf.string`` ``(batch, timesteps)``, each text's tokens in the field ``vectorize.token_field``
      (what :func:`pipeline.classifier.predict.tokenize_texts` gives), right-padded with ``""``;
    * ``surfaces``: ``tf.string`` ``(batch, timesteps)``, the same tokens' surface forms, padded alike; only
      when ``model.char_encoder`` or ``model.ngram_features`` is on (the character ids and the n-gram bag);
    * ``text``: ``tf.string`` ``(batch,)``, the normalised text (:func:`pipeline.text.corpora.normalize`: NFKC,
      URLs removed, whitespace collapsed); only with ``model.ensemble = "char_ngram"``;
    * ``norms``, ``lemmas``: ``tf.string`` ``(batch, timesteps)``, the same tokens' normalised forms and lemmas,
      padded alike; only with ``vectorize.form_fallback`` (those of them that are not ``token_field``): a word
      outside the vocabulary reads as its norm's entry, else its lemma's, before ``<unk>``;
* outputs: ``probabilities`` ``float32`` ``(batch, classes)`` in the order of the labels, ``label`` ``tf.string``
  ``(batch,)`` (the most probable one).

Signature ``labels``: no inputs, ``labels`` ``tf.string`` ``(classes,)``.

Inside the graph, as :func:`pipeline.classifier.predict.classify` does: the vocabulary lookup (unknown words ->
``<unk>``), truncation to ``train.max_length`` tokens, the hashed character ids and n-gram bag of
:mod:`pipeline.text.features` (crc32 computed in the graph, :mod:`pipeline.text.graph`), the Keras model, and
the char n-gram member of the ensemble: TF-IDF of character 1-3-grams of the lower-cased text (sublinear term
frequency, idf, l2 rows), logistic regression, mixed with weight w. A row of ``tokens`` that is all padding
gets the model's output for an empty sentence, where ``classify`` reports an error instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from pipeline.classifier.ensemble import NGRAM_RANGE, CharNgramModel
from pipeline.runs import ExportGraph, Run
from pipeline.text import graph
from pipeline.text.features import WORD_FIELD, uses_subword_features

# What Python's re matches with r"\s" in a str, in RE2 syntax (RE2's \s is ASCII only): sklearn's char analyzer
# joins runs of it into one space.
UNICODE_WHITESPACE = (r"[\t-\r\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}"
                      r"\x{205f}\x{3000}]")


class CharNgramGraph(tf.Module):
    """:meth:`pipeline.classifier.ensemble.CharNgramModel.probabilities` in float64 TensorFlow ops.

    sklearn's char analyzer (lower-case, runs of whitespace -> one space, every 1-3-gram of code points), counts
    of the n-grams in the member's vocabulary, ``1 + log(count)``, times idf, l2-normalised rows; decision values
    ``features · coefᵀ + intercept``, then softmax (sigmoid for two classes). Lower-casing is ICU's per code point
    (``tf.strings.lower``), Python's ``str.lower`` for every text this pipeline's normaliser leaves; the few
    characters whose full case mapping differs (``İ``) are the exception.
    """

    def __init__(self, member: CharNgramModel) -> None:
        super().__init__(name="char_ngram")
        self.features = len(member.ngrams)
        initializer = tf.lookup.KeyValueTensorInitializer(tf.constant(member.ngrams, tf.string),
                                                          tf.range(self.features, dtype=tf.int64))
        self.ngram_table = tf.lookup.StaticHashTable(initializer, default_value=-1)
        self.idf = tf.Variable(member.idf.astype(np.float64), trainable=False, name="idf")
        self.coef = tf.Variable(member.coef.T.astype(np.float64), trainable=False, name="coef")  # (features, k)
        self.intercept = tf.Variable(member.intercept.astype(np.float64), trainable=False, name="intercept")
        self.binary = member.coef.shape[0] == 1

    def probabilities(self, texts: tf.Tensor) -> tf.Tensor:
        """Class probabilities ``(batch, classes)`` float64 of the normalised ``texts`` ``(batch,)``."""
        lowered = tf.strings.regex_replace(tf.strings.lower(texts, encoding="utf-8"),
                                           UNICODE_WHITESPACE + "{2,}", " ")
        characters = tf.strings.unicode_split(lowered, "UTF-8")
        low, high = NGRAM_RANGE
        grams = tf.concat([tf.strings.ngrams(characters, order, separator="") for order in range(low, high + 1)],
                          axis=1)
        columns = self.ngram_table.lookup(grams.flat_values)
        rows = grams.value_rowids()
        known = columns >= 0
        keys = tf.boolean_mask(rows, known) * self.features + tf.boolean_mask(columns, known)
        cells, _, counts = tf.unique_with_counts(keys)  # each (text, n-gram) once, with its count
        rows, columns = cells // self.features, cells % self.features
        values = (1.0 + tf.math.log(tf.cast(counts, tf.float64))) * tf.gather(self.idf, columns)
        batch = tf.shape(texts, out_type=tf.int64)[0]
        norms = tf.sqrt(tf.math.unsorted_segment_sum(values * values, rows, batch))
        values = values / tf.gather(norms, rows)
        decision = tf.math.unsorted_segment_sum(values[:, None] * tf.gather(self.coef, columns), rows, batch)
        decision = decision + self.intercept
        if self.binary:
            positive = tf.sigmoid(decision[:, 0])
            return tf.stack([1.0 - positive, positive], axis=1)
        return tf.nn.softmax(decision, axis=1)


class ClassifierGraph(tf.Module):
    """The run's front end, Keras model and ensemble member, tracked for ``tf.saved_model.save``."""

    def __init__(self, run: Run) -> None:
        super().__init__(name="classifier")
        settings = run.config.model
        self.model = run.model
        self.vocabulary = graph.vocabulary_table(run.vocab.tokens)
        self.label_names = tf.constant(run.labels, tf.string)
        self.max_length = run.config.train.max_length
        self.settings = settings
        self.fallbacks = run.config.vectorize.fallback_fields  # vectorize.form_fallback: the norms, the lemmas
        self.char_member, self.weight = None, None
        if "ensemble" in run.extras:
            member, weight = run.extras["ensemble"]
            self.char_member, self.weight = CharNgramGraph(member), float(weight)

    def input_specs(self) -> dict[str, tf.TensorSpec]:
        specs = {"tokens": tf.TensorSpec([None, None], tf.string, name="tokens")}
        for field in self.fallbacks:
            specs[f"{field}s"] = tf.TensorSpec([None, None], tf.string, name=f"{field}s")
        if uses_subword_features(self.settings):
            specs["surfaces"] = tf.TensorSpec([None, None], tf.string, name="surfaces")
        if self.char_member is not None:
            specs["text"] = tf.TensorSpec([None], tf.string, name="text")
        return specs

    def model_inputs(self, tokens: tf.Tensor, surfaces: tf.Tensor | None, forms: tuple = ()) -> Any:
        """What the Keras model takes, as :func:`pipeline.classifier.predict.text_batches` builds it; ``forms``: the
        same tokens' other forms, looked up in order for a word outside the vocabulary (``vectorize.form_fallback``,
        :meth:`pipeline.text.vocab.Vocabulary.encode_forms`)."""
        width = tf.maximum(tf.minimum(tf.shape(tokens)[1], self.max_length), 1)
        tokens = graph.pad_columns(tokens[:, :self.max_length], width)
        token_ids = graph.encode_tokens(self.vocabulary, tokens)
        for other in forms:  # "" (padding) is no key: it stays <unk>, as in Python
            found = tf.cast(self.vocabulary.lookup(graph.pad_columns(other[:, :self.max_length], width)), tf.int32)
            token_ids = tf.where(tf.equal(token_ids, graph.UNK_ID), found, token_ids)
        if surfaces is None:
            return token_ids
        surfaces = graph.pad_columns(surfaces[:, :self.max_length], width)
        inputs = {"token_ids": token_ids}
        if self.settings.char_encoder != "none":
            inputs["char_ids"] = graph.char_ids(surfaces, self.settings.max_chars, self.settings.char_buckets)
        if self.settings.ngram_features != "none":
            inputs["ngram_ids"] = graph.ngram_ids(surfaces, self.settings.ngram_features, self.settings.ngram_buckets)
        return inputs

    def classify(self, tokens: tf.Tensor, surfaces: tf.Tensor | None = None, text: tf.Tensor | None = None,
                 norms: tf.Tensor | None = None, lemmas: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        given = {"norm": norms, "lemma": lemmas}
        probabilities = tf.cast(self.model(self.model_inputs(tokens, surfaces, tuple(given[field] for field in
                                                                                     self.fallbacks)),
                                           training=False), tf.float64)
        if self.char_member is not None:
            probabilities = self.weight * probabilities + (1.0 - self.weight) * self.char_member.probabilities(text)
        return {"probabilities": tf.cast(probabilities, tf.float32),
                "label": tf.gather(self.label_names, tf.argmax(probabilities, axis=1))}

    def labels(self) -> dict[str, tf.Tensor]:
        return {"labels": tf.identity(self.label_names)}


INPUT_DESCRIPTIONS = {
    "tokens": "each text's tokens in the field vectorize.token_field, as the run's tokenizer gives them, "
              "right-padded with \"\"",
    "surfaces": "the same tokens' surface forms, padded alike (character ids and n-gram bag)",
    "text": "the normalised text (NFKC, URLs removed, whitespace collapsed), for the char n-gram member",
    "norms": "the same tokens' normalised forms, padded alike: a word outside the vocabulary reads as its norm",
    "lemmas": "the same tokens' lemmas, padded alike: a word outside the vocabulary (and its norm) reads as its lemma",
}


def export(run: Run) -> ExportGraph:
    """The ``serving_default`` and ``labels`` signatures of a classifier run (``registry.Task.api["export"]``)."""
    module = ClassifierGraph(run)
    specs = module.input_specs()
    serving = tf.function(module.classify).get_concrete_function(**specs)
    labels = tf.function(module.labels).get_concrete_function()
    settings = run.config.model
    model_inputs = ["token ids"]
    if settings.char_encoder != "none":
        model_inputs.append(f"the ids of each token's first {settings.max_chars} characters")
    if settings.ngram_features != "none":
        model_inputs.append(f"the hashed {settings.ngram_features} n-gram bag")
    fallback = "".join(f"its {field}'s entry, else " for field in module.fallbacks)
    contains = [f"vocabulary lookup of {len(run.vocab)} tokens (unknown -> {fallback}<unk>, \"\" -> padding)",
                f"truncation to train.max_length = {run.config.train.max_length} tokens",
                f"the Keras model: {', '.join(model_inputs)} -> probabilities"]
    if uses_subword_features(settings):
        contains.append("crc32 % buckets + 1 of the surface forms' characters and n-grams, computed in the graph: "
                        "the ids of pipeline.text.features.stable_id")
    if module.char_member is not None:
        contains.append(f"the char n-gram member: TF-IDF of character 1-3-grams of the lower-cased text "
                        f"({module.char_member.features} n-grams, sublinear tf, idf, l2 rows), logistic "
                        f"regression; mixed as p = {module.weight:g} · recurrent + {1 - module.weight:g} · char "
                        "n-gram")
    metadata = {
        "signatures": {
            "serving_default": {
                "inputs": {name: {"dtype": "string", "shape": [None] * len(spec.shape),
                                  "description": INPUT_DESCRIPTIONS[name]} for name, spec in specs.items()},
                "outputs": {"probabilities": {"dtype": "float32", "shape": [None, len(run.labels)],
                                              "description": "probability of each label, in the order of labels"},
                            "label": {"dtype": "string", "shape": [None], "description": "the most probable label"}}},
            "labels": {"inputs": {}, "outputs": {"labels": {"dtype": "string", "shape": [len(run.labels)]}}}},
        "token_field": run.config.vectorize.token_field,
        "surface_field": WORD_FIELD,
        "tokenize": run.config.to_dict()["tokenize"],
        "contains": contains,
        "outside_the_graph": ["tokenization: the run's tokenizer (tokenize above) gives tokens and surfaces",
                              "normalisation of the text: NFKC, URLs removed, whitespace collapsed"],
        "labels": list(run.labels),
    }
    return ExportGraph(module, {"serving_default": serving, "labels": labels}, metadata)
