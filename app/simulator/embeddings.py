"""The simulator's ``POST /v1/embeddings``: deterministic hashed bag-of-words vectors.

Each content word of a text (the simulator's own stemmed tokens) adds ±1 at a position fixed
by a hash of the word; the vector is scaled to unit length. Texts sharing words get a high
cosine, texts sharing none get about zero: enough for tests and benchmarks of the dense
shortlist, and the same vector for the same text in every run. OpenAI's reply shape, with
``encoding_format`` ``float`` (default) or ``base64`` (little-endian float32, what OpenAI's
client asks for).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from functools import lru_cache
from http import HTTPStatus

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.simulator.policy import tokens

__all__ = ["DEFAULT_DIMENSIONS", "SimulatorEmbeddings", "embed_text"]

DEFAULT_DIMENSIONS = 256
MAX_DIMENSIONS = 4096
MAX_INPUTS = 2048


@lru_cache(maxsize=65536)
def _slot(word: str, dimensions: int) -> tuple[int, float]:
    digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
    number = int.from_bytes(digest, "big")
    return number % dimensions, 1.0 if number >> 63 else -1.0


def embed_text(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> np.ndarray:
    """The unit-length hashed bag-of-words vector of ``text`` (all zeros when it has no word)."""
    vector = np.zeros(dimensions, dtype=np.float32)
    for word in tokens(text):
        position, sign = _slot(word, dimensions)
        vector[position] += sign
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _error(message: str) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return JSONResponse(body, status_code=HTTPStatus.BAD_REQUEST)


def _inputs(body: object) -> list[str] | str:
    """The request's input texts, or an error message."""
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return "'input' must be a string or a non-empty list of strings"
    if len(texts) > MAX_INPUTS:
        return f"at most {MAX_INPUTS} inputs per request"
    return texts


class SimulatorEmbeddings:
    """The embeddings endpoint, answering under one model name."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.calls = 0

    async def embeddings(self, request: Request) -> Response:
        """``POST /v1/embeddings``: one vector per input text."""
        self.calls += 1
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error("the request body is not valid JSON")
        texts = _inputs(body)
        if isinstance(texts, str):
            return _error(texts)
        dimensions = body.get("dimensions") or DEFAULT_DIMENSIONS
        if not isinstance(dimensions, int) or not 1 <= dimensions <= MAX_DIMENSIONS:
            return _error(f"'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}")
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector = embed_text(text, dimensions)
            encoded = base64.b64encode(vector.astype("<f4").tobytes()).decode() if as_base64 else None
            embedding = encoded if encoded is not None else vector.tolist()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        used = sum(math.ceil(len(t) / 4) for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model") or self.model_name,
                "usage": {"prompt_tokens": used, "total_tokens": used},
            }
        )
