"""``pipeline hopfield``: glyphs stored in a Hopfield network and recalled from a corrupted cue."""
