"""The HTTP service's request and response bodies as pydantic models: FastAPI validates requests against them
and describes them in ``/openapi.json`` and ``/docs``.

Requests are strict (a number is not a string, ``true`` is not ``1``), reject fields they do not know (a typo
such as ``max_token`` is an error, not silently ignored), non-finite numbers (``NaN``, ``Infinity``) and
unpaired UTF-16 surrogates (``"\\ud800"``), which no tokenizer can read and no JSON encoder can write back.
The limits that depend on ``pipeline serve`` options (texts per request, characters per text, ``max_tokens``,
``num``) are checked by the endpoints (:mod:`pipeline.serve.app`), with the same error shape.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SURROGATE = re.compile("[\ud800-\udfff]")
MAX_NAME_CHARACTERS = 200  # a model name is a run folder's name, never a path


def _valid_unicode(value: str) -> str:
    found = SURROGATE.search(value)
    if found:
        raise ValueError(f"unpaired UTF-16 surrogate U+{ord(found.group()):04X} at character {found.start()}; "
                         "send valid Unicode text")
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]
ModelName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARACTERS), AfterValidator(_valid_unicode)]
MODEL_FIELD = ("a loaded model's name (its run folder's name, see GET /v1/models); may be omitted when exactly one "
               "model of the endpoint's kind is loaded")


class Request(BaseModel):
    """What every request body shares: strict types, no unknown fields, finite numbers only."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


class TextsRequest(Request):
    """``POST /v1/classify`` and ``POST /v1/explain``."""

    model: ModelName | None = Field(None, description=MODEL_FIELD)
    texts: list[Text] = Field(..., min_length=1, description="sentences, each non-blank; at most `--max-texts` "
                                                             "of at most `--max-text-chars` characters each")


class ReadRequest(TextsRequest):
    """``POST /v1/read``: the katakana reading of each text."""

    beam_size: int | None = Field(None, ge=1, le=16, description="beam width (default: the run's [reading])")
    length_penalty: float | None = Field(None, ge=0, le=2,
                                         description="length normalisation exponent in [0, 2] (default: the run's)")


class GenerateRequest(Request):
    """``POST /v1/generate``: samples continuing ``prompt`` (see ``pipeline generate --help``)."""

    model: ModelName | None = Field(None, description=MODEL_FIELD)
    prompt: Text = Field("", description="text to continue ('' starts a new sentence); at most "
                                         "`--max-prompt-chars` characters")
    temperature: float = Field(0.8, ge=0.01, le=100, description="< 1 sharper, > 1 flatter")
    top_k: int = Field(0, ge=0, le=100_000, description="sample among the k most probable tokens (0: off)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus threshold in (0, 1] (1: off)")
    max_tokens: int = Field(40, ge=1, description="stop after this many tokens; at most `--max-generate-tokens`")
    num: int = Field(1, ge=1, description="number of samples; at most `--max-samples`")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="same seed, same text")
    repetition_penalty: float = Field(1.0, ge=1, le=100, description="p -> p^P for tokens already in the text")
    no_repeat_ngram: int = Field(0, ge=0, le=100, description="never repeat an n-gram of this many tokens (0: off)")
    label: Text | None = Field(None, max_length=MAX_NAME_CHARACTERS,
                               description="the label a conditional model generates for")


class ItemError(BaseModel):
    """A text the model could not take (no tokens left after normalisation and filtering); the others of the
    request are still answered."""

    text: str
    error: str


class Classification(BaseModel):
    text: str
    label: str
    probability: float
    probabilities: dict[str, float] = Field(..., description="every label's probability")
    unknown_token_share: float = Field(..., description="share of the text's tokens outside the vocabulary")


class Explanation(Classification):
    tokens: list[tuple[str, float]] = Field(..., description="[token, weight] pairs, the run's own tokens")
    method: str = Field(..., description="attention (weights sum to 1) or occlusion (drop of the label's "
                                         "probability without the token)")
    truncated: int = Field(0, description="tokens past train.max_length, which the model did not see")


class ClassifyResponse(BaseModel):
    model: str
    results: list[Classification | ItemError]


class ExplainResponse(BaseModel):
    model: str
    results: list[Explanation | ItemError]


class Sample(BaseModel):
    prompt: str
    label: str | None
    text: str = Field(..., description="prompt and sample joined as the language writes them")
    tokens: list[str]
    probabilities: list[float] = Field(..., description="the probability of each sampled token")
    ended: bool = Field(..., description="the sample ended with </s> before max_tokens")


class GenerateResponse(BaseModel):
    model: str
    samples: list[Sample]


class Reading(BaseModel):
    text: str
    reading: str
    log_probability: float


class ReadResponse(BaseModel):
    model: str
    results: list[Reading]


class ModelInfo(BaseModel):
    name: str = Field(..., description="the run folder's name")
    task: str = Field(..., description="classifier, generator or reading")
    labels: list[str]
    conditioned: bool = Field(..., description="generate needs a `label` (one of `labels`); false: it refuses one")
    metrics: dict[str, Any] | None = Field(..., description="the run's metrics.json (null before `evaluate`)")
    fingerprint: str = Field(..., description="sha256 of the run's config.json")
    created: str | None = Field(..., description="when the run was published (run.json)")
    version: str = Field(..., description="the pipeline version serving it")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class ReloadFailure(BaseModel):
    name: str
    message: str


class ReloadResponse(BaseModel):
    reloaded: list[str] = Field(..., description="models whose run folder was republished, now serving the new run")
    unchanged: list[str]
    failed: list[ReloadFailure] = Field(..., description="republished but not loadable: the old run keeps serving")


class Status(BaseModel):
    status: str
    models: list[str] | None = Field(None, description="the served models' names (readyz)")


class ErrorBody(BaseModel):
    code: str = Field(..., description="machine-readable: invalid_request, too_large, unknown_model, ...")
    message: str = Field(..., description="one line saying what to change")


class ErrorResponse(BaseModel):
    """Every error, whatever the status (4xx, or 503 while loading or overloaded)."""

    error: ErrorBody
