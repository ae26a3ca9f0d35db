"""PartlyFrozenEmbedding against numpy (the rows it returns) and against keras.layers.Embedding (the same training)."""

import keras
import numpy as np
import pytest

from pipeline.layers.embedding import PartlyFrozenEmbedding
from pipeline.models import embedding, embedding_matrix_of, set_embedding_matrix
from pipeline.tools.neighbours.similar import embedding_weights

VOCABULARY, DIM, TRAINABLE = 12, 4, 7


def start_matrix(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(VOCABULARY, DIM)).astype("float32")


def partly_frozen(matrix: np.ndarray) -> PartlyFrozenEmbedding:
    layer = PartlyFrozenEmbedding(VOCABULARY, DIM, TRAINABLE)
    layer.build((None, None))
    layer.assign_matrix(matrix)
    return layer


def test_rows_and_mask_are_those_of_the_whole_matrix():
    matrix = start_matrix()
    ids = np.array([[1, 6, 7, 11, 0], [3, 9, 0, 0, 0]])  # both sides of the split, and padding
    layer = partly_frozen(matrix)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(ids)), matrix[ids])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.compute_mask(ids)), ids != 0)
    np.testing.assert_array_equal(layer.matrix(), matrix)
    reference = keras.layers.Embedding(VOCABULARY, DIM, mask_zero=True)
    reference.build((None, None))
    reference.set_weights([matrix])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(ids)), keras.ops.convert_to_numpy(reference(ids)))


def classifier(layer: keras.layers.Layer) -> keras.Model:
    ids = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.GlobalAveragePooling1D()(layer(ids))
    outputs = keras.layers.Dense(2, activation="softmax", kernel_initializer=keras.initializers.GlorotUniform(3))(x)
    model = keras.Model(ids, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.05, global_clipnorm=1.0), loss="sparse_categorical_crossentropy")
    return model


def test_training_below_the_split_is_the_training_of_one_matrix_and_the_other_rows_stay():
    """Ids below ``trainable_rows`` only (what the classifier guarantees): Adam with global-norm clipping moves the
    weights exactly as with a ``keras.layers.Embedding``; the frozen rows are the start's, not trainable weights."""
    matrix = start_matrix()
    rng = np.random.default_rng(1)
    ids, labels = rng.integers(1, TRAINABLE, size=(32, 6)), rng.integers(0, 2, size=32)
    ours = partly_frozen(matrix)
    reference = keras.layers.Embedding(VOCABULARY, DIM, mask_zero=True)
    reference.build((None, None))
    reference.set_weights([matrix])
    models = [classifier(ours), classifier(reference)]
    for model in models:
        model.fit(ids, labels, batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert [tuple(w.shape) for w in ours.trainable_weights] == [(TRAINABLE, DIM)]
    np.testing.assert_allclose(ours.matrix(), reference.get_weights()[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours.matrix()[:TRAINABLE], matrix[:TRAINABLE])  # it trained
    np.testing.assert_array_equal(ours.matrix()[TRAINABLE:], matrix[TRAINABLE:])
    np.testing.assert_allclose(models[0].predict(ids, verbose=0), models[1].predict(ids, verbose=0), rtol=1e-5)


def test_ids_above_the_split_read_their_rows_but_never_change_them():
    matrix = start_matrix()
    ids, labels = np.array([[8, 9, 10, 11], [2, 9, 3, 11]] * 4), np.array([0, 1] * 4)
    layer = partly_frozen(matrix)
    classifier(layer).fit(ids, labels, epochs=2, verbose=0)
    np.testing.assert_array_equal(layer.matrix()[TRAINABLE:], matrix[TRAINABLE:])
    assert not np.allclose(layer.matrix()[[2, 3]], matrix[[2, 3]])


def test_a_saved_model_reloads_with_both_parts(tmp_path):
    matrix = start_matrix()
    model = classifier(partly_frozen(matrix))
    model.fit(np.array([[1, 8, 2, 0]]), np.array([1]), verbose=0)
    matrix = model.layers[1].matrix()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    ids = np.array([[1, 8, 11, 0]])
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))
    assert embedding_weights(loaded, VOCABULARY) is not None  # the neighbours tool finds the whole matrix
    np.testing.assert_array_equal(embedding_weights(loaded, VOCABULARY), matrix)


def test_the_builder_splits_only_a_trainable_embedding_with_rows_to_spare():
    matrix = start_matrix()
    assert isinstance(embedding(VOCABULARY, DIM, True, trainable_rows=TRAINABLE), PartlyFrozenEmbedding)
    for trainable, rows in ((True, None), (True, VOCABULARY), (False, TRAINABLE)):
        assert type(embedding(VOCABULARY, DIM, trainable, trainable_rows=rows)) is keras.layers.Embedding
    for layer in (embedding(VOCABULARY, DIM, True, trainable_rows=TRAINABLE), embedding(VOCABULARY, DIM, True)):
        layer.build((None, None))
        set_embedding_matrix(layer, matrix)
        np.testing.assert_array_equal(embedding_matrix_of(layer), matrix)


@pytest.mark.parametrize("rows", [0, VOCABULARY])
def test_trainable_rows_must_leave_rows_on_both_sides(rows):
    with pytest.raises(ValueError, match="trainable_rows"):
        PartlyFrozenEmbedding(VOCABULARY, DIM, rows)
