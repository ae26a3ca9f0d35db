"""Sequence to sequence: a character encoder–decoder that writes the katakana reading of a sentence."""
