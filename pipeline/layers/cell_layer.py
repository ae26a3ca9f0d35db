"""What our recurrent layers over ``keras.layers.RNN`` share: a config made of their cell's arguments, and
inputs projected once for the whole sequence before the time loop (the reservoirs)."""

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


class PrecomputedDrive:
    """Mixin for a ``keras.layers.RNN`` subclass whose cell has ``project_inputs(sequences)``.

    The input projection ``u(n) W_in`` does not depend on the state, so it is computed once for
    ``(batch, timesteps, features)`` as one matrix product, and the time loop then only adds the
    recurrent term (the cell reads its ``_drive_precomputed`` flag). Put it before ``keras.layers.RNN``.
    """

    def call(self, sequences, initial_state=None, mask=None, training=False):
        drive = self.cell.project_inputs(sequences)
        self.cell._drive_precomputed = True
        try:
            return super().call(drive, initial_state=initial_state, mask=mask, training=training)
        finally:
            self.cell._drive_precomputed = False
