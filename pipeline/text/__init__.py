"""The text front end: corpus readers and split, GiNZA tokens, vocabulary, vectors, batches (text -> ids)."""
