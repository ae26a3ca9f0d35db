"""The language-model task: teacher-forcing data, build, train (full or truncated BPTT), perplexity, sampling."""
