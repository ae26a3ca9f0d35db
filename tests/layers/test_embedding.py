"""PartlyFrozenEmbedding against numpy (the rows it returns) and against keras.layers.Embedding (the same training)."""

import keras
import numpy as np
import pytest

from pipeline.layers.embedding import PartlyFrozenEmbedding
from pipeline.models import embedding, embedding_matrix_of, set_embedding_matrix
from pipeline.tools.neighbours.similar import embedding_weights

VOCABULARY, DIM = 12, 4
TRAINED = np.array([1, 2, 3, 5, 8, 10])  # scattered, as the rows a corpus's training sentences reach
FROZEN = np.setdiff1d(np.arange(VOCABULARY), TRAINED)


def start_matrix(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(VOCABULARY, DIM)).astype("float32")


def partly_frozen(matrix: np.ndarray, trained: np.ndarray = TRAINED) -> PartlyFrozenEmbedding:
    layer = PartlyFrozenEmbedding(VOCABULARY, DIM, len(trained))
    layer.build((None, None))
    layer.assign(matrix, trained)
    return layer


def keras_embedding(matrix: np.ndarray) -> keras.layers.Embedding:
    layer = keras.layers.Embedding(VOCABULARY, DIM, mask_zero=True)
    layer.build((None, None))
    layer.set_weights([matrix])
    return layer


def test_rows_and_mask_are_those_of_the_whole_matrix():
    matrix = start_matrix()
    ids = np.array([[1, 6, 7, 11, 0], [3, 9, 10, 0, 0]])  # trained and frozen rows, and padding
    layer = partly_frozen(matrix)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(ids)), matrix[ids])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(ids)),
                                  keras.ops.convert_to_numpy(keras_embedding(matrix)(ids)))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.compute_mask(ids)), ids != 0)
    np.testing.assert_array_equal(layer.matrix(), matrix)
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(len(TRAINED), DIM)]


def test_until_told_the_first_rows_train():
    layer = PartlyFrozenEmbedding(VOCABULARY, DIM, 3)
    layer.build((None, None))
    matrix = start_matrix()
    layer.assign(matrix)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.embeddings), matrix[:3])


def classifier(layer: keras.layers.Layer) -> keras.Model:
    ids = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.GlobalAveragePooling1D()(layer(ids))
    outputs = keras.layers.Dense(2, activation="softmax", kernel_initializer=keras.initializers.GlorotUniform(3))(x)
    model = keras.Model(ids, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.05, global_clipnorm=1.0), loss="sparse_categorical_crossentropy")
    return model


def test_training_on_the_trained_rows_is_the_training_of_one_matrix_and_the_other_rows_stay():
    """Ids among the trained rows only (what the classifier guarantees): Adam with global-norm clipping moves the
    weights exactly as with a ``keras.layers.Embedding``; the frozen rows keep their start."""
    matrix = start_matrix()
    rng = np.random.default_rng(1)
    ids, labels = rng.choice(TRAINED, size=(32, 6)), rng.integers(0, 2, size=32)
    ours, reference = partly_frozen(matrix), keras_embedding(matrix)
    models = [classifier(ours), classifier(reference)]
    for model in models:
        model.fit(ids, labels, batch_size=8, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(ours.matrix(), reference.get_weights()[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours.matrix()[TRAINED], matrix[TRAINED])  # it trained
    np.testing.assert_array_equal(ours.matrix()[FROZEN], matrix[FROZEN])
    np.testing.assert_allclose(models[0].predict(ids, verbose=0), models[1].predict(ids, verbose=0), rtol=1e-5)


def test_frozen_rows_are_read_but_never_change():
    matrix = start_matrix()
    ids, labels = np.array([[4, 6, 2, 11], [9, 7, 3, 11]] * 4), np.array([0, 1] * 4)
    layer = partly_frozen(matrix)
    classifier(layer).fit(ids, labels, epochs=2, verbose=0)
    np.testing.assert_array_equal(layer.matrix()[FROZEN], matrix[FROZEN])
    assert not np.allclose(layer.matrix()[[2, 3]], matrix[[2, 3]])


def test_a_saved_model_reloads_with_its_parts(tmp_path):
    model = classifier(partly_frozen(start_matrix()))
    model.fit(np.array([[1, 8, 2, 0]]), np.array([1]), verbose=0)
    matrix = model.layers[1].matrix()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    ids = np.array([[1, 8, 11, 4, 0]])
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))
    np.testing.assert_array_equal(embedding_weights(loaded, VOCABULARY), matrix)  # what the neighbours tool reads


def test_the_builder_splits_only_a_trainable_embedding_with_rows_to_spare():
    matrix = start_matrix()
    assert isinstance(embedding(VOCABULARY, DIM, True, trainable_rows=len(TRAINED)), PartlyFrozenEmbedding)
    for trainable, rows in ((True, None), (True, VOCABULARY), (True, 0), (False, len(TRAINED))):
        assert type(embedding(VOCABULARY, DIM, trainable, trainable_rows=rows)) is keras.layers.Embedding
    for layer in (embedding(VOCABULARY, DIM, True, trainable_rows=len(TRAINED)), embedding(VOCABULARY, DIM, True)):
        layer.build((None, None))
        set_embedding_matrix(layer, matrix, TRAINED)
        np.testing.assert_array_equal(embedding_matrix_of(layer), matrix)


@pytest.mark.parametrize("rows", [0, VOCABULARY])
def test_trainable_rows_must_leave_rows_on_both_sides(rows):
    with pytest.raises(ValueError, match="trainable_rows"):
        PartlyFrozenEmbedding(VOCABULARY, DIM, rows)


def test_the_trained_rows_must_be_as_many_as_declared():
    layer = PartlyFrozenEmbedding(VOCABULARY, DIM, 3)
    layer.build((None, None))
    with pytest.raises(ValueError, match="3 distinct rows"):
        layer.assign(start_matrix(), np.array([1, 1, 2]))
