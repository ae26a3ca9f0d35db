"""Ways to use a trained run outside the command line, each a thin adapter over :func:`pipeline.load_run`:

* ``app.py``: the HTTP service (FastAPI, run by uvicorn: ``pipeline serve``) and its web page (``static/``);
* ``component.py``: the spaCy pipeline component ``ja_rnn_textcat``;
* ``export.py``: ``pipeline export``, a TensorFlow SavedModel for TensorFlow Serving.
"""
