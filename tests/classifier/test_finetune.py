"""Tests of ``pipeline.classifier.finetune``: the layer groups of a classifier and their factors per epoch."""

import numpy as np
import pytest
from helpers import classifier

from pipeline.classifier.finetune import HEAD, fine_tuning_rates, layer_groups
from pipeline.sections import TrainConfig

TWO_LAYERS = [{"type": "lstm", "units": 4}, {"type": "gru", "units": 3}]


def test_groups_are_embedding_recurrent_layers_then_the_head():
    model = classifier(TWO_LAYERS, pooling="attention", attention_units=2, dense_units=5)
    names, group_of = layer_groups(model)
    assert names == ("embedding", "recurrent_0", "recurrent_1", HEAD)
    assert set(group_of) == {id(variable) for variable in model.trainable_weights}  # every variable, once
    for name, group in (("embedding", 0), ("recurrent_0", 1), ("recurrent_1", 2), ("attention_pooling", 3),
                        ("dense", 3), ("probabilities", 3)):
        assert {group_of[id(variable)] for variable in model.get_layer(name).trainable_weights} == {group}


def test_a_frozen_embedding_is_no_group():
    names, _ = layer_groups(classifier(TWO_LAYERS, trainable_embeddings=False))
    assert names == ("recurrent_0", "recurrent_1", HEAD)


def test_every_option_off_gives_no_group_rates():
    assert fine_tuning_rates(TrainConfig(), classifier(TWO_LAYERS)) is None


def test_discriminative_rates_divide_by_the_factor_per_group_down_to_the_embedding():
    rates = fine_tuning_rates(TrainConfig(discriminative_factor=2.6), classifier(TWO_LAYERS))
    assert rates.names == ("embedding", "recurrent_0", "recurrent_1", HEAD)
    for epoch in (0, 5):
        assert rates.factors(epoch) == pytest.approx((2.6 ** -3, 2.6 ** -2, 1 / 2.6, 1.0))


def test_frozen_embedding_epochs_then_its_own_factor():
    rates = fine_tuning_rates(TrainConfig(freeze_embeddings_epochs=2, embedding_learning_rate_factor=0.1),
                              classifier(TWO_LAYERS))
    np.testing.assert_allclose([rates.factors(epoch) for epoch in range(4)],
                               [(0.0, 1, 1, 1), (0.0, 1, 1, 1), (0.1, 1, 1, 1), (0.1, 1, 1, 1)])


def test_gradual_unfreezing_starts_with_the_head_and_adds_one_group_an_epoch():
    settings = TrainConfig(gradual_unfreezing=True, discriminative_factor=2.0, embedding_learning_rate_factor=0.5,
                           freeze_embeddings_epochs=4)
    rates = fine_tuning_rates(settings, classifier(TWO_LAYERS))
    np.testing.assert_allclose([rates.factors(epoch) for epoch in range(6)], [
        (0.0, 0.0, 0.0, 1.0),
        (0.0, 0.0, 0.5, 1.0),
        (0.0, 0.25, 0.5, 1.0),
        (0.0, 0.25, 0.5, 1.0),  # the embedding would be unfrozen now, but freeze_embeddings_epochs = 4
        (0.125 * 0.5, 0.25, 0.5, 1.0),
        (0.125 * 0.5, 0.25, 0.5, 1.0),
    ])
