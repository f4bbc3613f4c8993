"""JSON bodies that an endpoint parses itself (the LoRaWAN webhook, the OTA report, a release's
manifest): a size and a nesting limit checked on the bytes before they are parsed, so a
deeply nested body is a 4xx rather than a RecursionError, and no NaN or Infinity (not JSON,
though Python's parser takes them)."""

import json
from typing import Any

from mizumori_server.inputs import MAX_DEPTH, check_json, json_depth


class JsonError(ValueError):
    """The body is refused: `status` 413 (too large) or 400 (not JSON, or too deep)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


depth = json_depth


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(body: bytes, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """The parsed body; JsonError if it is over max_bytes, nested deeper than max_depth,
    not UTF-8 JSON, or holds a NUL character in a string."""
    if len(body) > max_bytes:
        raise JsonError(413, f"body over {max_bytes} bytes")
    if depth(body) > max_depth:
        raise JsonError(400, f"JSON nested deeper than {max_depth}")
    try:
        value = json.loads(body, parse_constant=_constant)
        check_json(value, max_depth)
    except (ValueError, RecursionError) as e:
        raise JsonError(400, f"not JSON: {e}"[:200]) from None
    return value
