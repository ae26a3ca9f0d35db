"""``pipeline similar``: the nearest words by cosine similarity in the ja_ginza vectors or a run's embedding."""
