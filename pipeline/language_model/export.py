"""A language-model run as a TensorFlow graph: what :meth:`pipeline.runs.Run.export` saves for TensorFlow Serving.

Signature ``next_token`` (also ``serving_default``):

* inputs
    * ``tokens``: ``tf.string`` ``(batch, timesteps)``, each prefix's tokens in the field ``vectorize.token_field``
      (what the run's tokenizer gives for the prompt, as :func:`pipeline.language_model.generate.prompt_ids`),
      right-padded with ``""``; the start token (``<s>``, or ``</s>`` for a stream-trained model) is added in the
      graph, so an all-``""`` row asks for the first token of a sentence;
    * ``label``: ``tf.string`` ``(batch,)``, the label to condition on; only with ``model.conditioning`` on (an
      unknown label fails the request);
* outputs: ``probabilities`` ``float32`` ``(batch, vocabulary)``, the model's distribution of the token after
  each prefix, in vocabulary id order (the ``vocabulary`` signature and ``export.json``).

Signature ``vocabulary``: no inputs, ``vocabulary`` ``tf.string`` ``(vocabulary,)`` (entry i has id i).

Inside the graph: the vocabulary lookup (unknown words -> ``<unk>``), the start token, the Keras model over the
whole prefix, the distribution at each prefix's last token. Sampling (temperature, top-k, top-p, repetition
penalties, never ``<pad>``, ``<unk>`` or ``<s>``, see :mod:`pipeline.language_model.sampling`) is the client's.
"""

from __future__ import annotations

import tensorflow as tf

from pipeline.language_model.model import start_id
from pipeline.runs import ExportGraph, Run
from pipeline.text import graph


class LanguageModelGraph(tf.Module):
    """The run's vocabulary lookup and Keras model, tracked for ``tf.saved_model.save``."""

    def __init__(self, run: Run) -> None:
        super().__init__(name="language_model")
        self.model = run.model
        self.vocabulary = graph.vocabulary_table(run.vocab.tokens)
        self.vocabulary_tokens = tf.constant(run.vocab.tokens, tf.string)
        self.start_id = start_id(run.config, run.vocab)
        self.label_table = None
        if run.config.model.conditioning != "none":
            initializer = tf.lookup.KeyValueTensorInitializer(tf.constant(run.labels, tf.string),
                                                              tf.range(len(run.labels), dtype=tf.int64))
            self.label_table = tf.lookup.StaticHashTable(initializer, default_value=-1)

    def input_specs(self) -> dict[str, tf.TensorSpec]:
        specs = {"tokens": tf.TensorSpec([None, None], tf.string, name="tokens")}
        if self.label_table is not None:
            specs["label"] = tf.TensorSpec([None], tf.string, name="label")
        return specs

    def next_token(self, tokens: tf.Tensor, label: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        token_ids = graph.encode_tokens(self.vocabulary, tokens)
        lengths = tf.reduce_sum(tf.cast(tf.not_equal(tokens, graph.PADDING), tf.int32), axis=1)
        start = tf.fill([tf.shape(tokens)[0], 1], tf.constant(self.start_id, tf.int32))
        inputs = tf.concat([start, token_ids], axis=1)  # the prefix as generate() feeds it
        if self.label_table is not None:
            label_ids = self.label_table.lookup(label)
            check = tf.debugging.assert_non_negative(label_ids, message="unknown label; see the labels in "
                                                                        "assets.extra/export.json")
            with tf.control_dependencies([check]):
                inputs = (inputs, tf.cast(label_ids, tf.int32))
        probabilities = self.model(inputs, training=False)  # (batch, 1 + timesteps, vocabulary)
        # the output at a prefix's last token (position `length` after the start token) saw only the prefix
        return {"probabilities": tf.cast(tf.gather(probabilities, lengths, batch_dims=1), tf.float32)}

    def vocabulary_list(self) -> dict[str, tf.Tensor]:
        return {"vocabulary": tf.identity(self.vocabulary_tokens)}


def export(run: Run) -> ExportGraph:
    """The ``next_token`` and ``vocabulary`` signatures of a language-model run (``registry.Task.api["export"]``)."""
    module = LanguageModelGraph(run)
    specs = module.input_specs()
    next_token = tf.function(module.next_token).get_concrete_function(**specs)
    vocabulary = tf.function(module.vocabulary_list).get_concrete_function()
    inputs = {"tokens": {"dtype": "string", "shape": [None, None],
                         "description": "each prefix's tokens in the field vectorize.token_field, as the run's "
                                        "tokenizer gives them, right-padded with \"\"; no start token"}}
    if "label" in specs:
        inputs["label"] = {"dtype": "string", "shape": [None], "description": "the label to condition on"}
    start_token = run.vocab.tokens[module.start_id]
    metadata = {
        "signatures": {
            "next_token": {"inputs": inputs, "outputs": {"probabilities": {
                "dtype": "float32", "shape": [None, len(run.vocab)],
                "description": "distribution of the next token, in vocabulary id order"}}},
            "vocabulary": {"inputs": {}, "outputs": {"vocabulary": {"dtype": "string",
                                                                    "shape": [len(run.vocab)]}}}},
        "serving_default": "next_token",
        "token_field": run.config.vectorize.token_field,
        "tokenize": run.config.to_dict()["tokenize"],
        "start_token": start_token,
        "contains": [f"vocabulary lookup of {len(run.vocab)} tokens (unknown -> <unk>, \"\" -> padding)",
                     f"{start_token} prepended to every prefix",
                     "the Keras model over the prefix -> the distribution at its last token"],
        "outside_the_graph": ["tokenization: the run's tokenizer (tokenize above) gives the prefix's tokens",
                              "sampling: temperature, top-k/top-p, repetition penalties, banned tokens"],
        "vocabulary": list(run.vocab.tokens),
        "labels": list(run.labels),
    }
    signatures = {"serving_default": next_token, "next_token": next_token, "vocabulary": vocabulary}
    return ExportGraph(module, signatures, metadata)
