"""A Japanese NLP pipeline on Keras: corpus -> GiNZA tokens -> vectors -> recurrent models."""

__version__ = "0.1.0"
