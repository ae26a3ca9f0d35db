"""The config sections of the language-model task: ``[generate]`` (sampling) and ``[pretrain]``
(the language model that gives a classifier its encoder, :mod:`pipeline.language_model.pretrain`)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.sections import check, fraction, one_of


@dataclass(frozen=True)
class GenerateConfig:
    """Sampling defaults for ``pipeline generate`` and the prompts ``pipeline run`` samples from."""

    prompts: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()  # conditional models: one label per prompt ("" for none)
    temperature: float = 0.8  # < 1 sharper and safer, > 1 flatter and more surprising
    top_k: int = 0  # sample among the k most probable tokens; 0: all
    top_p: float = 1.0  # sample from the smallest set with this much probability; 1: all
    repetition_penalty: float = 1.0  # >= 1: p -> p ** P for tokens already in the text (CTRL); 1: off
    no_repeat_ngram: int = 0  # never repeat an n-gram of this many tokens, prompt included; 0: off
    max_tokens: int = 40
    num: int = 3  # samples per prompt

    def validate(self) -> None:
        check(self.temperature > 0, "generate.temperature", self.temperature, "> 0")
        check(self.top_k >= 0, "generate.top_k", self.top_k, ">= 0")
        fraction("generate.top_p", self.top_p, low_open=True, high_open=False)
        check(self.repetition_penalty >= 1, "generate.repetition_penalty", self.repetition_penalty, ">= 1 (1: off)")
        check(self.no_repeat_ngram >= 0, "generate.no_repeat_ngram", self.no_repeat_ngram, ">= 0 (0: off)")
        check(self.max_tokens >= 1, "generate.max_tokens", self.max_tokens, ">= 1")
        check(self.num >= 1, "generate.num", self.num, ">= 1")
        check(not self.labels or len(self.labels) == len(self.prompts), "generate.labels", self.labels,
               "empty or one label per prompt")

@dataclass(frozen=True)
class PretrainConfig:
    """Language-model pretraining of a classifier's encoder (Dai & Le 2015; Howard & Ruder 2018).

    With ``enabled``, the ``pretrain`` stage trains a left-to-right language model with the
    classifier's own embedding and ``[[model.layers]]`` on the training split plus
    ``corpus.unlabeled_path``, and the classifier starts from its weights. A bidirectional layer
    (``bilstm``, ``bigru``) takes its backward half from a second, right-to-left language model
    over the same embedding (:mod:`pipeline.language_model.pretrain`). The run is cached
    under ``work/<corpus>/pretrained/`` by a fingerprint of these settings, so every classifier
    config with the same encoder and corpus reuses it.
    """

    enabled: bool = False
    epochs: int = 8
    patience: int = 2  # early stopping on validation perplexity
    batch_size: int = 64
    learning_rate: float = 2e-3  # Adam
    clipnorm: float = 0.25  # global-norm clipping, as AWD-LSTM
    max_length: int = 60  # tokens per sentence predicted
    output: str = "adaptive"  # full | adaptive softmax (see model.output)
    embedding_dropout: float = 0.1  # AWD-LSTM regularisers for the language model only (see [model])
    input_dropout: float = 0.3
    hidden_dropout: float = 0.25
    output_dropout: float = 0.4
    weight_drop: float = 0.5  # DropConnect on the recurrent weights of lstm layers while pretraining (0: off)
    # keep the embedding as vectorize made it (ja_ginza vectors): the language models train the recurrent layers only
    freeze_embeddings: bool = False

    def validate(self) -> None:
        check(self.epochs >= 1, "pretrain.epochs", self.epochs, ">= 1")
        check(self.patience >= 0, "pretrain.patience", self.patience, ">= 0")
        check(self.batch_size >= 1, "pretrain.batch_size", self.batch_size, ">= 1")
        check(self.learning_rate > 0, "pretrain.learning_rate", self.learning_rate, "> 0")
        check(self.clipnorm >= 0, "pretrain.clipnorm", self.clipnorm, ">= 0")
        check(self.max_length >= 2, "pretrain.max_length", self.max_length, ">= 2")
        one_of("pretrain.output", self.output, ("full", "adaptive"))
        for key in ("embedding_dropout", "input_dropout", "hidden_dropout", "output_dropout", "weight_drop"):
            fraction(f"pretrain.{key}", getattr(self, key))
