"""The sentence classifier task: build, train, evaluate against baselines, label new sentences."""
