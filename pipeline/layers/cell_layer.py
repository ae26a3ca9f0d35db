"""What our recurrent layers over ``keras.layers.RNN`` share: a config made of their cell's arguments."""

from __future__ import annotations


class CellArgumentsConfig:
    """Mixin for a ``keras.layers.RNN`` subclass whose constructor takes its cell's arguments.

    The saved config is the RNN's own (``return_sequences``, ``go_backwards``, ...) without the
    ``cell`` entry, plus the cell's constructor arguments named in ``cell_arguments``, so
    ``cls(**config)`` rebuilds the layer and its cell. Put it before ``keras.layers.RNN`` in the bases.
    """

    cell_arguments: tuple[str, ...] = ()

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        cell_config = self.cell.get_config()
        return {**config, **{name: cell_config[name] for name in self.cell_arguments}}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
