"""The frame's config sections and the checks every section uses.

The frame owns the sections of the text front end and the training core: ``[corpus]``,
``[tokenize]``, ``[vectorize]``, ``[model]`` and ``[train]``. Tasks and tools own theirs
(``classifier/sections.py``, ``tools/lsm/sections.py``, ...) and register them
(:mod:`pipeline.registry`). Each is a typed, frozen dataclass whose fields have a default and a
comment saying why; ``validate()`` checks ranges and choices and raises a one-line
:class:`PipelineError` naming the key (``config key 'train.dropout' = 1.5 is invalid: it must be in
[0, 1)``). :mod:`pipeline.config` assembles them into :class:`pipeline.config.Config` and loads TOML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.errors import PipelineError


def check(condition: bool, key: str, value: Any, requirement: str) -> None:
    if not condition:
        raise PipelineError(f"config key '{key}' = {value!r} is invalid: it must be {requirement}")


def one_of(key: str, value: str, choices: tuple[str, ...]) -> None:
    check(value in choices, key, value, "one of " + ", ".join(repr(c) for c in choices))


def fraction(key: str, value: float, low_open: bool = False, high_open: bool = True) -> None:
    above = value > 0 if low_open else value >= 0
    below = value < 1 if high_open else value <= 1
    interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
    check(above and below, key, value, f"in {interval}")


@dataclass(frozen=True)
class CorpusConfig:
    """Where the corpus is and how to read and split it (``pipeline.text.corpora``)."""

    format: str = "knb"  # knb | table | folders | text
    path: str = "corpora/knb_blog"
    name: str = ""  # work/<name>/; empty: the corpus folder or file name
    text_column: str = "text"  # table format: column (CSV/TSV header, JSONL key) with the text
    label_column: str = "label"  # table format: column with the label; "" for unlabelled text
    doc_column: str = ""  # table format: optional column naming the document of each row
    # table format: optional column with each row's split (train, validation/valid/dev, test): the user's own
    # test set is kept as given instead of a random split; "" = draw the split
    split_column: str = ""
    encoding: str = "auto"  # auto detects UTF-8 / EUC-JP / Shift_JIS
    header_lines: int = 0  # folders: lines to skip at the top of each file
    split_sentences: bool = False  # folders/text: split bodies into sentences at 。！？
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    min_examples_per_label: int = 3  # a label with fewer rows cannot be split
    deduplicate: bool = True
    # unlabelled text (a .txt file or a folder of them, one sentence or paragraph a line) that the language-model
    # pretraining reads beside the training split; never scored, never in the classifier's splits
    unlabeled_path: str = ""

    def validate(self) -> None:
        one_of("corpus.format", self.format, ("knb", "table", "folders", "text"))
        check(bool(self.path), "corpus.path", self.path, "a path to the corpus")
        fraction("corpus.validation_fraction", self.validation_fraction)
        fraction("corpus.test_fraction", self.test_fraction)
        total = self.validation_fraction + self.test_fraction
        check(total < 1, "corpus.test_fraction", self.test_fraction, "such that validation + test < 1")
        check(self.header_lines >= 0, "corpus.header_lines", self.header_lines, ">= 0")
        check(self.min_examples_per_label >= 1, "corpus.min_examples_per_label", self.min_examples_per_label, ">= 1")
        one_of("corpus.encoding", self.encoding, ("auto", "utf-8", "euc-jp", "shift_jis", "cp932"))
        check(not self.split_column or self.format == "table", "corpus.split_column", self.split_column,
               '"" unless corpus.format = "table"')


SP_MODEL_TYPES = ("unigram", "bpe")  # tokenize.sp_model_type


@dataclass(frozen=True)
class TokenizeConfig:
    """GiNZA settings (``pipeline.text.tokenize``)."""

    method: str = "ginza"  # ginza: GiNZA/SudachiPy words; char: characters; whitespace: pre-tokenized text
    model: str = "ja_ginza"
    batch_size: int = 256  # texts per nlp.pipe batch
    pos_source: str = "sudachi"  # sudachi: coarse POS from the Sudachi tag (fast); ud: morphologizer
    entities: bool = False  # run the NER component too (slow)
    drop_punct: bool = False  # drop punctuation tokens
    stop_pos: tuple[str, ...] = ()  # coarse POS tags to drop, e.g. ["ADP", "AUX"]
    lowercase: bool = False  # lower-case Latin letters in surface forms
    processes: int = 1  # ginza: forked worker processes; same tokens as 1, faster on big corpora
    shard_rows: int = 20000  # the stage tokenizes and saves this many sentences at a time (memory, resuming)
    # sentencepiece (pipeline.text.subwords): pieces learned from the training split; unigram (Kudo 2018) or bpe
    sp_model_type: str = "unigram"
    sp_vocab_size: int = 8000  # pieces to learn; more than a small corpus allows -> the most it allows (a warning)
    sp_model: str = ""  # a SentencePiece model file to use instead of learning one; a loaded run points it at its copy

    def validate(self) -> None:
        check(self.batch_size >= 1, "tokenize.batch_size", self.batch_size, ">= 1")
        one_of("tokenize.pos_source", self.pos_source, ("sudachi", "ud"))
        check(self.processes >= 1, "tokenize.processes", self.processes, ">= 1")
        check(self.shard_rows >= 1, "tokenize.shard_rows", self.shard_rows, ">= 1 (sentences per shard)")
        one_of("tokenize.method", self.method, ("ginza", "char", "whitespace", "sentencepiece"))
        if self.sp_model_type not in SP_MODEL_TYPES:
            import difflib

            close = difflib.get_close_matches(self.sp_model_type, SP_MODEL_TYPES, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            check(False, "tokenize.sp_model_type", self.sp_model_type, "one of 'unigram', 'bpe'" + hint)
        check(self.sp_vocab_size >= 2, "tokenize.sp_vocab_size", self.sp_vocab_size, ">= 2")


@dataclass(frozen=True)
class VectorizeConfig:
    """Vocabulary and embedding matrix (``pipeline.text.vocab``, ``pipeline.text.vectors``)."""

    token_field: str = "surface"  # surface | lemma | norm: what a vocabulary entry is
    min_count: int = 1  # drop words seen fewer times in the training split
    max_size: int = 20000  # at most this many entries, pad and unknown included
    vectors: str = "ja_ginza"  # ja_ginza: static vectors of the spaCy model; none: random init
    unknown_vector_scale: float = 0.5  # std of random vectors, relative to the std of known ones
    # words without a vector: random (seeded), or characters: the mean vector of their longest pieces that have one
    # (湯豆腐 -> 湯 + 豆腐), random only when no piece has one
    unknown_init: str = "random"  # random | characters
    # with vectors = ja_ginza: the words owning the first this-many rows of its vector table (its most frequent
    # words) join the vocabulary after the training words, so a word that training never saw still reads as its
    # vector at test and classify time (pipeline.text.embeddings.vector_table_words); 0: training words only
    vector_words: int = 0
    # a word outside the vocabulary reads as its entry under its other forms (norm, then lemma: 言い -> 言う,
    # いちご -> 苺) before <unk>, in vectorize and in classify alike (pipeline.text.vocab.Vocabulary.encode_forms)
    form_fallback: bool = False

    @property
    def fallback_fields(self) -> tuple[str, ...]:
        """The token fields a word outside the vocabulary is looked up under, in order (``form_fallback``)."""
        return tuple(field for field in ("norm", "lemma") if field != self.token_field) if self.form_fallback else ()

    def validate(self) -> None:
        one_of("vectorize.token_field", self.token_field, ("surface", "lemma", "norm"))
        check(self.min_count >= 1, "vectorize.min_count", self.min_count, ">= 1")
        check(self.max_size >= 3, "vectorize.max_size", self.max_size, ">= 3 (pad, unknown and one word)")
        one_of("vectorize.vectors", self.vectors, ("ja_ginza", "none"))
        check(self.unknown_vector_scale > 0, "vectorize.unknown_vector_scale", self.unknown_vector_scale, "> 0")
        one_of("vectorize.unknown_init", self.unknown_init, ("random", "characters"))
        check(self.unknown_init == "random" or self.vectors != "none", "vectorize.unknown_init", self.unknown_init,
               '"random" with vectorize.vectors = "none" (there are no vectors to build from)')
        check(self.vector_words >= 0, "vectorize.vector_words", self.vector_words, ">= 0 (0: training words only)")
        check(self.vector_words == 0 or self.vectors != "none", "vectorize.vector_words", self.vector_words,
              '0 with vectorize.vectors = "none" (there is no vector table to take words from)')


@dataclass(frozen=True)
class ModelConfig:
    """Architecture (the layer registry in ``pipeline.models``): embedding, recurrent stack, pooling, head."""

    task: str = "classifier"  # a registered task: classifier | generator | reading (sentence -> katakana)
    embedding_dim: int = 0  # 0: the vector size (300) with vectors, else 128
    trainable_embeddings: bool = True
    layers: tuple[dict, ...] = ({"type": "bilstm", "units": 64},)
    pooling: str = "last"  # last | mean | max | attention, or a "+" of mean, max, attention (classifier)
    # attention pooling: size of u_t = tanh(W h_t + b), scored against a learned context vector (Yang et al. 2016)
    attention_units: int = 64
    dense_units: int = 0  # optional dense layer before the softmax; 0: none
    dense_dropout: float = 0.0
    readout: str = "softmax"  # softmax (gradient descent) | ridge (closed form, for esn)
    ridge: float = 1e-4  # regularisation β of the ridge readout
    initializer: str = "glorot_uniform"  # kernel init of recurrent and dense layers (Xavier)
    init_scale: float = 0.1  # range of the uniform initializer when initializer = "uniform"
    # classifier subword signal (pipeline.text.features), off by default. A vector per token from its characters
    # (Ling et al. 2015), concatenated with the word vector before the recurrent stack:
    char_encoder: str = "none"  # none | cnn (convolutions of widths 2 and 3, max over chars) | bilstm (final states)
    char_dim: int = 32  # size of a character embedding
    char_units: int = 64  # size of a token's character vector (split between the widths / directions)
    max_chars: int = 10  # characters kept per token (the first ones)
    char_buckets: int = 8192  # characters are hashed (crc32) into this many ids; no vocabulary to save
    # wide-and-deep head (Cheng et al. 2016): the mean of hashed n-gram embeddings (fastText, Joulin et al. 2017)
    # concatenated with the recurrent sentence vector before the softmax
    ngram_features: str = "none"  # none | char (1-3-grams of the sentence) | word (uni+bigrams) | both
    ngram_buckets: int = 65536  # 2**16 hashed n-gram ids: 2**18 trained 2x slower for the same accuracy (README)
    ngram_dim: int = 64
    ngram_dropout: float = 0.0  # dropout on the averaged n-gram vector
    # classifier: none | char_ngram (mix with char 1-3-gram TF-IDF + logistic regression, weight on validation)
    ensemble: str = "none"
    tie_weights: bool = False  # generator: the output layer reuses the input embedding (Press & Wolf 2017)
    conditioning: str = "none"  # generator: none | initial_state | concat (a learned label vector)
    # generator output layer: full softmax, or adaptive softmax (Grave et al. 2017): a frequent-word head and
    # smaller tail clusters; exact probabilities, several times less arithmetic for large vocabularies
    output: str = "full"  # full | adaptive
    cutoffs: tuple[int, ...] = ()  # adaptive: ids where tail clusters start; empty = chosen from the vocabulary size
    projection_factor: int = 4  # adaptive: cluster i projects to dim / factor**(i+1)
    # generator: this many language models of the same config, each from its own seed, whose next-token
    # distributions are averaged (an ensemble; they share train.time_limit_minutes)
    members: int = 1
    # AWD-LSTM regularisation (Merity et al. 2018); each 0 = off
    embedding_dropout: float = 0.0  # drop whole word types from the embedding (Gal & Ghahramani 2016); classifiers too
    input_dropout: float = 0.0  # variational (locked) dropout on the embedded sequence: one mask per sequence
    hidden_dropout: float = 0.0  # locked dropout between stacked recurrent layers
    output_dropout: float = 0.0  # locked dropout on the last recurrent layer's output
    activation_regularization: float = 0.0  # AR: alpha * mean(h_t^2) on the dropped output
    temporal_activation_regularization: float = 0.0  # TAR: beta * mean((h_t - h_{t-1})^2) on the undropped output

    def validate(self) -> None:
        check(self.embedding_dim >= 0, "model.embedding_dim", self.embedding_dim, ">= 0")
        check(len(self.layers) >= 1, "model.layers", self.layers, "at least one [[model.layers]] table")
        kinds = self.pooling.split("+")
        if len(kinds) == 1:
            one_of("model.pooling", self.pooling, ("last", "mean", "max", "attention"))
        check(len(kinds) == 1 or (set(kinds) <= {"mean", "max", "attention"} and len(set(kinds)) == len(kinds)),
              "model.pooling", self.pooling, 'one of "last", "mean", "max", "attention", or several of mean, max and '
              'attention joined by "+", each once (e.g. "attention+mean+max")')
        check(self.attention_units >= 1, "model.attention_units", self.attention_units, ">= 1")
        check(self.dense_units >= 0, "model.dense_units", self.dense_units, ">= 0")
        fraction("model.dense_dropout", self.dense_dropout)
        one_of("model.readout", self.readout, ("softmax", "ridge"))
        check(self.ridge >= 0, "model.ridge", self.ridge, ">= 0")
        one_of("model.initializer", self.initializer, ("glorot_uniform", "uniform", "orthogonal", "he_uniform"))
        check(self.init_scale > 0, "model.init_scale", self.init_scale, "> 0")
        one_of("model.char_encoder", self.char_encoder, ("none", "cnn", "bilstm"))
        for key in ("char_dim", "char_units", "max_chars", "char_buckets", "ngram_buckets", "ngram_dim"):
            check(getattr(self, key) >= 1, f"model.{key}", getattr(self, key), ">= 1")
        check(self.char_encoder != "cnn" or self.char_units >= 2, "model.char_units", self.char_units,
               ">= 2 with model.char_encoder = \"cnn\" (one filter per width at least)")
        check(self.char_encoder != "bilstm" or self.char_units % 2 == 0, "model.char_units", self.char_units,
               "even with model.char_encoder = \"bilstm\" (half per direction)")
        one_of("model.ngram_features", self.ngram_features, ("none", "char", "word", "both"))
        fraction("model.ngram_dropout", self.ngram_dropout)
        one_of("model.ensemble", self.ensemble, ("none", "char_ngram"))
        one_of("model.conditioning", self.conditioning, ("none", "initial_state", "concat"))
        one_of("model.output", self.output, ("full", "adaptive"))
        check(all(b > a for a, b in zip((0, *self.cutoffs), self.cutoffs)), "model.cutoffs", list(self.cutoffs),
               "strictly increasing positive ids")
        check(self.projection_factor >= 1, "model.projection_factor", self.projection_factor, ">= 1")
        check(self.members >= 1, "model.members", self.members, ">= 1")
        check(not (self.output == "adaptive" and self.tie_weights and not self.trainable_embeddings),
               "model.trainable_embeddings", self.trainable_embeddings,
               "true with model.tie_weights and model.output = \"adaptive\" (the embedding is the output layer)")
        for key in ("embedding_dropout", "input_dropout", "hidden_dropout", "output_dropout"):
            fraction(f"model.{key}", getattr(self, key))
        for key in ("activation_regularization", "temporal_activation_regularization"):
            check(getattr(self, key) >= 0, f"model.{key}", getattr(self, key), ">= 0")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation (``pipeline.classifier.train``)."""

    optimizer: str = "adam"  # sgd | rmsprop | adagrad | adam
    learning_rate: float = 1e-3
    momentum: float = 0.9  # sgd only
    clipnorm: float = 0.0  # clip the global gradient norm to this; 0: off
    clipvalue: float = 0.0  # clip each gradient element to [-v, v]; 0: off
    batch_size: int = 32
    epochs: int = 20
    # batches an epoch reads (validation, checkpoint, early stopping and resume after each); the next epoch goes
    # on where this one stopped in the shuffled order; 0: the whole training split every epoch
    steps_per_epoch: int = 0
    # validation sentences scored after each epoch (early stopping, the checkpoint, the learning-rate plateau): a
    # seeded sample of this many, the same every epoch, so epochs on millions of sentences do not validate on
    # hundreds of thousands; 0: the whole validation split. evaluate still scores the whole test split
    validation_rows: int = 0
    patience: int = 3  # early stopping: epochs without a better validation loss; 0: off
    class_weights: str = "none"  # none | balanced
    bucketing: bool = True  # batch sentences of similar length together
    max_length: int = 100  # tokens kept per sentence
    tensorboard: bool = True
    # constant | step (decay after decay_start epochs) | plateau | per batch over all epochs (classifier):
    # slanted_triangular (ULMFiT's STLR: 10% linear rise, decay to 1/32) | one_cycle (warm-up, cosine decay)
    lr_schedule: str = "constant"
    decay_start: int = 4  # step: epochs at the full learning rate before decaying
    decay_factor: float = 0.5  # step/plateau: multiply the learning rate by this
    plateau_patience: int = 1  # plateau: epochs without improvement before decaying
    # classifier fine-tuning (ULMFiT, Howard & Ruder 2018); every default is off. Layer groups, bottom to top:
    # embedding, recurrent_0, recurrent_1, ..., head (pooling, dense, softmax and any other new layer)
    freeze_embeddings_epochs: int = 0  # embedding frozen for this many epochs, then trained
    embedding_learning_rate_factor: float = 1.0  # the embedding's rate is this times the rate (e.g. 0.1)
    discriminative_factor: float = 1.0  # each group's rate is the one above's divided by this (paper: 2.6)
    gradual_unfreezing: bool = False  # epoch 1 trains the head only, each further epoch unfreezes the next group
    regime: str = "sentences"  # generator: sentences (full BPTT per padded sentence) | tbptt (stateful stream)
    bptt_steps: int = 35  # tbptt: tokens per truncated back-propagation window
    loss: str = "mean"  # generator: mean per token | sum_over_time (per window, as Zaremba et al.)
    time_limit_minutes: float = 0.0  # stop before an epoch would end past this budget (best weights kept); 0: off
    # generator: Keras dtype policy; mixed_bfloat16 computes in bfloat16 with float32 weights and outputs
    # float32 | mixed_bfloat16 | auto (mixed_bfloat16 on a CPU with bfloat16 arithmetic, else float32)
    precision: str = "float32"
    # data parallelism (tf.distribute, pipeline.distribution): none | mirrored (local devices) | multi_worker
    # (processes named by TF_CONFIG, each reading its share of every batch); batch_size stays the global batch
    distribute: str = "none"
    # the Keras backend that trains (pipeline.backend_process): tensorflow (its steps op by op) | jax (whole steps
    # compiled by XLA: the default and gru configs' epochs 2-2.5x faster on 2 CPU cores, as fast on long sentences;
    # compiling costs seconds per batch shape, kept between runs). Not this process's? The stage runs in a child
    # process on it; evaluate, classify, export and serve stay on this process's backend
    backend: str = "tensorflow"
    # weight averaging, scored in place of the epoch's own weights (pipeline.averaging.WeightAveraging): none | swa
    # (an equal average of the epoch-end weights from epoch average_start on; Izmailov et al. 2018)
    average: str = "none"
    average_start: int = 0  # swa: first averaged epoch (from 1); 0: the epoch after the first one without a new best
    # classifier: knowledge distillation from the char n-gram model (pipeline.classifier.distill.distillation_targets):
    # each training target is (1 - distill) * one-hot label + distill * that model's out-of-fold probabilities; 0: off
    distill: float = 0.0
    distill_folds: int = 5  # the folds of the out-of-fold probabilities
    # with distill > 0 and corpus.unlabeled_path: the recurrent model also learns the char n-gram model's
    # probabilities of at most this many unlabeled sentences per training sentence (a seeded sample); 0: none
    # (measured, README: no gain on Aozora or the shipped corpus, where the unlabeled text's words pay instead)
    distill_unlabeled: float = 0.0
    # classifier: adversarial training (pipeline.adversarial): each step adds the loss with every word vector of the
    # batch moved by this fraction of its length in the direction that raises the loss most; 0: off
    # (measured, README: a wash on Aozora at twice the training, 1.5 points lower on the shipped corpus)
    adversarial: float = 0.0
    # classifier: virtual adversarial training (pipeline.adversarial): each step adds the divergence of the model's
    # predictions from those with the batch's word vectors moved by this fraction of their length in the direction
    # that changes them most; needs no labels, so it also reads unlabeled sentences (corpus.unlabeled_path), at most
    # virtual_unlabeled per training sentence (a seeded sample); 0: off (measured, README: the unlabeled text read
    # this way gives the ensemble nothing on Aozora and costs the shipped corpus 2 points)
    virtual_adversarial: float = 0.0
    virtual_unlabeled: float = 1.0
    # classifier: self-training (pipeline.classifier.self_training): with corpus.unlabeled_path, the trained classifier
    # labels the unlabeled sentences and is trained again from the start on the labelled and those; this many rounds
    # (each student the next teacher); 0: off. The teacher keeps a sentence whose top probability reaches
    # self_training_threshold, at most self_training_unlabeled per training sentence (the most confident); measured,
    # README: 0.8 beats 0.0 on the shipped corpus and Aozora, and a second round adds nothing. Each student starts
    # from the model's initial weights ("scratch") or from its teacher's trained ones ("teacher"; measured, README:
    # no faster, better on Aozora, 2 points worse on the shipped corpus)
    self_training: int = 0
    self_training_threshold: float = 0.8
    self_training_unlabeled: float = 1.0
    self_training_start: str = "scratch"

    def validate(self) -> None:
        one_of("train.optimizer", self.optimizer, ("sgd", "rmsprop", "adagrad", "adam"))
        check(self.learning_rate > 0, "train.learning_rate", self.learning_rate, "> 0")
        fraction("train.momentum", self.momentum)
        check(self.clipnorm >= 0, "train.clipnorm", self.clipnorm, ">= 0")
        check(self.clipvalue >= 0, "train.clipvalue", self.clipvalue, ">= 0")
        check(not (self.clipnorm and self.clipvalue), "train.clipvalue", self.clipvalue,
               "0 when train.clipnorm is set (clip by global norm or by value, not both)")
        check(self.batch_size >= 1, "train.batch_size", self.batch_size, ">= 1")
        check(self.epochs >= 1, "train.epochs", self.epochs, ">= 1")
        check(self.steps_per_epoch >= 0, "train.steps_per_epoch", self.steps_per_epoch, ">= 0 (0: whole epochs)")
        check(self.validation_rows >= 0, "train.validation_rows", self.validation_rows,
              ">= 0 (0: the whole validation split)")
        check(self.patience >= 0, "train.patience", self.patience, ">= 0")
        one_of("train.class_weights", self.class_weights, ("none", "balanced"))
        check(self.max_length >= 1, "train.max_length", self.max_length, ">= 1")
        one_of("train.lr_schedule", self.lr_schedule,
                ("constant", "step", "plateau", "slanted_triangular", "one_cycle"))
        check(self.decay_start >= 0, "train.decay_start", self.decay_start, ">= 0")
        fraction("train.decay_factor", self.decay_factor, low_open=True)
        check(self.plateau_patience >= 0, "train.plateau_patience", self.plateau_patience, ">= 0")
        check(self.freeze_embeddings_epochs >= 0, "train.freeze_embeddings_epochs", self.freeze_embeddings_epochs,
               ">= 0")
        check(self.embedding_learning_rate_factor >= 0, "train.embedding_learning_rate_factor",
               self.embedding_learning_rate_factor, ">= 0 (0: never train the embedding)")
        check(self.discriminative_factor >= 1, "train.discriminative_factor", self.discriminative_factor,
               ">= 1 (1: the same rate for every layer)")
        one_of("train.regime", self.regime, ("sentences", "tbptt"))
        check(self.bptt_steps >= 1, "train.bptt_steps", self.bptt_steps, ">= 1")
        one_of("train.loss", self.loss, ("mean", "sum_over_time"))
        check(self.time_limit_minutes >= 0, "train.time_limit_minutes", self.time_limit_minutes, ">= 0")
        one_of("train.precision", self.precision, ("float32", "mixed_bfloat16", "auto"))
        one_of("train.distribute", self.distribute, ("none", "mirrored", "multi_worker"))
        one_of("train.backend", self.backend, ("tensorflow", "jax"))
        check(self.backend == "tensorflow" or self.distribute == "none", "train.backend", self.backend,
              '"tensorflow" with train.distribute (tf.distribute is TensorFlow\'s); or set train.distribute = "none"')
        one_of("train.average", self.average, ("none", "swa"))
        check(self.average_start >= 0, "train.average_start", self.average_start, ">= 0 (0: automatic)")
        check(self.average == "none" or self.distribute == "none", "train.average", self.average,
               "\"none\" with train.distribute (averaging swaps the weights of one process)")
        fraction("train.distill", self.distill, high_open=False)
        check(self.distill_folds >= 2, "train.distill_folds", self.distill_folds, ">= 2")
        check(self.distill_unlabeled >= 0, "train.distill_unlabeled", self.distill_unlabeled,
              ">= 0 (unlabeled sentences per training sentence; 0: none)")
        check(0 <= self.adversarial <= 1, "train.adversarial", self.adversarial,
              "in [0, 1]: the radius as a fraction of each word vector's length (e.g. 0.05); 0: off")
        check(0 <= self.virtual_adversarial <= 1, "train.virtual_adversarial", self.virtual_adversarial,
              "in [0, 1]: the radius as a fraction of each word vector's length (e.g. 0.1); 0: off")
        check(self.virtual_unlabeled >= 0, "train.virtual_unlabeled", self.virtual_unlabeled,
              ">= 0 (unlabeled sentences per training sentence; 0: none)")
        check(self.self_training >= 0, "train.self_training", self.self_training, ">= 0 (rounds; 0: off)")
        check(0 <= self.self_training_threshold < 1, "train.self_training_threshold", self.self_training_threshold,
              "in [0, 1): the lowest top probability of a sentence the teacher labels (0: every sentence)")
        check(self.self_training_unlabeled > 0, "train.self_training_unlabeled", self.self_training_unlabeled,
              "> 0 (labelled unlabeled sentences per training sentence, at most)")
        one_of("train.self_training_start", self.self_training_start, ("scratch", "teacher"))


# [train]'s fine-tuning options (ULMFiT; pipeline.classifier.finetune): a task that does not fine-tune keeps them off
FINE_TUNING_KEYS = ("train.freeze_embeddings_epochs", "train.embedding_learning_rate_factor",
                    "train.discriminative_factor", "train.gradual_unfreezing")


def check_off(config: Any, keys: tuple[str, ...], what: str) -> None:
    """Each dotted ``section.key`` must keep its default (off): options that ``what`` does not support."""
    import dataclasses

    for dotted in keys:
        section, key = dotted.split(".")
        value = getattr(getattr(config, section), key)
        default = next(field.default for field in dataclasses.fields(getattr(config, section)) if field.name == key)
        shown = str(default).lower() if isinstance(default, bool) else repr(default)
        check(value == default, dotted, value, f"{shown} (off) for {what}")
