"""Bounded inputs (docs/server.md, "Security"): every integer the API takes fits the column
it is compared with or stored in, every string has a length and no NUL character (which
PostgreSQL text cannot hold), every float is finite, and JSON bodies are nested at most
MAX_DEPTH deep. A request outside these bounds is a 4xx that changes nothing, on SQLite
and PostgreSQL alike.

Shared by the routers: the integer and text types for path, query and header parameters,
the base model for JSON bodies (`Input`), the route class that reads a JSON body with a cap
and checks its nesting before FastAPI parses it (`BoundedRoute`), the router dependency
that refuses a NUL anywhere in the path, query or headers (`no_nul`), and the error bodies
the routers declare in their OpenAPI responses (`ERRORS`)."""

import re
from collections.abc import Callable, Coroutine, Iterator
from itertools import accumulate
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.types import Message

INT32_MAX = 2**31 - 1  # Integer columns: ids, counts, settings (PostgreSQL int4)
INT64_MAX = 2**63 - 1  # BigInteger columns: times, counters (int8)
# Unix seconds an API caller may give: 1970 to the last second of year 9999 (the largest
# time a date can be written for; differences of two of them fit in int64 with room).
TIME_MAX = 253402300799
MAX_DEPTH = 32  # nesting of JSON bodies (objects and arrays)
MAX_JSON_BYTES = 1024 * 1024  # a JSON body FastAPI parses (the largest: a 10,000 allowlist)
CODE_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"  # station codes, integration names

# Path parameters.
Id = Annotated[int, Path(ge=1, le=INT32_MAX, description=f"1..{INT32_MAX}")]
StationCode = Annotated[str, Path(min_length=1, max_length=64, pattern=CODE_PATTERN)]
# Query parameters.
UnixTime = Annotated[int | None, Query(ge=0, le=TIME_MAX,
                                       description=f"Unix seconds, 0..{TIME_MAX}")]
StationQuery = Annotated[str | None, Query(min_length=1, max_length=64, pattern=CODE_PATTERN,
                                           description="a station's code")]
# JSON body fields.
BodyId = Annotated[int, Field(ge=1, le=INT32_MAX)]
Count = Annotated[int, Field(ge=1, le=INT32_MAX)]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=CODE_PATTERN)]


async def no_nul(request: Request) -> None:
    """Router dependency: a NUL character in the path, a query parameter (name or value) or
    a header is a 422, before any parameter reaches the database. (async: no thread hop on
    the ingest path.)"""
    if ("\x00" in request.url.path
            or any("\x00" in k or "\x00" in v for k, v in request.query_params.multi_items())
            or any(b"\x00" in k or b"\x00" in v for k, v in request.headers.raw)):
        raise HTTPException(422, "NUL characters are not allowed")


def _walk(value: Any) -> Iterator[tuple[Any, int]]:
    """Every value inside a parsed JSON document with its depth, without recursion."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        yield v, depth
        if isinstance(v, dict):
            stack.extend((k, depth + 1) for k in v)
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list | tuple):
            stack.extend((x, depth + 1) for x in v)


def check_json(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """ValueError if a parsed JSON value nests deeper than max_depth or holds a NUL."""
    for v, depth in _walk(value):
        if depth > max_depth:
            raise ValueError(f"nested deeper than {max_depth}")
        if isinstance(v, str) and "\x00" in v:
            raise ValueError("NUL characters are not allowed")


# A string, or an unterminated one to the end of the text: every byte after a quote is
# consumed in one pass (a pattern that must find the closing quote backtracks over the
# whole rest from each quote: quadratic, an hour of CPU for a 1 MiB body of \" pairs).
_STRING = re.compile(rb'"(?:[^"\\]|\\.|\\\Z)*(?:"|\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings do not
    count), in one pass over the bytes and without parsing them."""
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", body))
    return max(accumulate(_STEP[b] for b in brackets), default=0)


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is over `limit` bytes (declared or
    sent): never more than that is held."""
    declared = request.headers.get("content-length")
    if (declared is not None and declared.isascii() and declared.isdigit()
            and (len(declared) > 15 or int(declared) > limit)):
        raise HTTPException(413, f"body over {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class BoundedRoute(APIRoute):
    """A route whose JSON body FastAPI parses into a model: the body is read with a cap
    (413 over MAX_JSON_BYTES) and its nesting checked (400 over MAX_DEPTH) before it is
    parsed, so neither a huge nor a deeply nested body gets that far."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def bounded(request: Request) -> Response:
            body = await read_capped(request, MAX_JSON_BYTES)
            if json_depth(body) > MAX_DEPTH:
                raise HTTPException(400, f"JSON nested deeper than {MAX_DEPTH}")
            replayed = False

            async def receive() -> Message:  # the body once, then the client's own
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await request.receive()

            return await handler(Request(request.scope, receive))

        return bounded


class Input(BaseModel):
    """Base of every JSON request body: finite floats, no NUL in any string (keys
    included, however deep), at most MAX_DEPTH deep."""

    model_config = ConfigDict(allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def bounded(cls, data: Any) -> Any:
        check_json(data)
        return data


class Problem(BaseModel):
    """Every error answer: what went wrong, in `detail`; some add a machine-readable
    `code` and fields of their own (ingest: `record`, `last_counter`; OGC API: `code` and
    `description`)."""

    model_config = ConfigDict(extra="allow")
    detail: str
    code: str | None = None


class Invalid(Problem):
    """A request the server refuses as malformed (422): `detail` says what, `errors` (for a
    request that does not match its schema) lists each problem."""

    errors: list[dict[str, str]] | None = Field(
        None, description="each problem: where (e.g. body.name) and what")


def error(description: str, model: type[Problem] = Problem) -> dict[str, Any]:
    """An error response for `responses=`: always JSON, whatever the route's own media
    type (a CSV download's errors are JSON too), so the schema is given inline."""
    return {"description": description,
            "content": {"application/json": {"schema": model.model_json_schema()}}}


# What the routers declare (APIRouter(responses=ERRORS)): the app's error bodies, so that a
# client (and the fuzzing stage, tests/server/test_fuzz.py) can hold every answer to the
# published schema.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: error("Bad request"),
    401: error("Not logged in, or not the device it claims to be"),
    403: error("The role may not do this"),
    404: error("Not found"),
    409: error("Conflicts with the current state"),
    413: error("Body too large"),
    422: error("Malformed or out-of-range input; nothing changed", Invalid),
    503: error("Busy or not configured: try again later"),
}


def bounded_router(prefix: str, tag: str,
                   responses: dict[int | str, dict[str, Any]] | None = None) -> APIRouter:
    """An API router with its inputs bounded: JSON bodies through BoundedRoute, no NUL in
    the path, query or headers, and the error answers declared (ERRORS, and `responses`)."""
    return APIRouter(prefix=prefix, tags=[tag], route_class=BoundedRoute,
                     responses={**ERRORS, **(responses or {})},
                     dependencies=[Depends(no_nul)])
