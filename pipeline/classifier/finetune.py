"""Fine-tuning a classifier layer by layer (ULMFiT, Howard & Ruder 2018): a learning rate per layer group and epoch.

A classifier whose encoder starts from a pretrained language model (or from the ja_ginza vectors)
has layers that already know something and a head that knows nothing. The groups, bottom to top::

    embedding, recurrent_0, ..., recurrent_{n-1}, head

(``head``: every other trainable layer — pooling, dense, softmax, subword encoders — the newly
initialised part; a group without trainable weights, e.g. a frozen embedding, is left out).
In epoch ``e`` (from 0) group ``g`` of ``top + 1`` trains at the learning rate (or schedule) times::

    factor[g] = discriminative_factor ** -(top - g)             each group below: the rate above / factor
              * embedding_learning_rate_factor                  the embedding only
              * 0   for the embedding while e < freeze_embeddings_epochs
              * 0   with gradual_unfreezing while g < top - e   (the head alone first, then one more group an epoch)

All in one ``fit``: the factors change when an epoch begins (:class:`pipeline.training.GroupRateSchedule`),
so early stopping, the best checkpoint and ``history.csv`` run over the whole training as usual.
"""

from __future__ import annotations

import re

import keras

from pipeline.sections import TrainConfig
from pipeline.training import GroupRates

HEAD = "head"


def layer_groups(model: keras.Model) -> tuple[tuple[str, ...], dict[int, int]]:
    """The group names bottom to top, and the group index of each trainable variable (by ``id``)."""
    recurrent = sorted((layer for layer in model.layers if re.fullmatch(r"recurrent_\d+", layer.name)),
                       key=lambda layer: int(layer.name.split("_")[1]))
    encoder = [layer for layer in model.layers if layer.name == "embedding"] + recurrent
    names, group_of = [], {}
    for layer in encoder:
        if layer.trainable_weights:
            group_of.update({id(variable): len(names) for variable in layer.trainable_weights})
            names.append(layer.name)
    head = len(names)
    group_of.update({id(variable): head for variable in model.trainable_weights if id(variable) not in group_of})
    return (*names, HEAD), group_of


def fine_tuning_rates(settings: TrainConfig, model: keras.Model) -> GroupRates | None:
    """The :class:`GroupRates` of ``settings``' fine-tuning options for ``model``; None when they are all off."""
    if (settings.discriminative_factor == 1 and settings.embedding_learning_rate_factor == 1
            and not settings.freeze_embeddings_epochs and not settings.gradual_unfreezing):
        return None
    names, group_of = layer_groups(model)
    top = len(names) - 1

    def factors(epoch: int) -> tuple[float, ...]:
        result = []
        for group, name in enumerate(names):
            factor = settings.discriminative_factor ** (group - top)
            if name == "embedding":
                factor *= settings.embedding_learning_rate_factor
                if epoch < settings.freeze_embeddings_epochs:
                    factor = 0.0
            if settings.gradual_unfreezing and group < top - epoch:
                factor = 0.0
            result.append(factor)
        return tuple(result)

    return GroupRates(names, lambda variable: group_of[id(variable)], factors)
