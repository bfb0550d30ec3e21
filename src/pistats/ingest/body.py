"""Pure request rules: content type, body parsing, batch shape and the caller's IP."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from pistats.contract import MAX_BATCH_EVENTS, cut_field, is_text
from pistats.ingest.api import IngestResponse, error_response


@dataclass(frozen=True)
class ParsedBody:
    """The events of a request (each still unvalidated) and whether it was a batch."""

    events: list
    is_batch: bool


def content_type_problem(content_type: str | None) -> str | None:
    """Why a Content-Type is refused, or None for ``application/json`` (UTF-8 charset only)."""
    if not content_type:
        return "Content-Type must be application/json"
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "application/json":
        return "Content-Type must be application/json"
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return "the body must be UTF-8 JSON"
    return None


_LISTED_UNKNOWN_FIELDS = 10


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_body(content_type: str | None, body: bytes) -> ParsedBody | IngestResponse:
    """The events of a request body, or the 400 response that refuses it.

    A body is one event object, or ``{"batch": [event, ...]}`` with 1 to MAX_BATCH_EVENTS
    events. Events are not validated here.
    """
    problem = content_type_problem(content_type)
    if problem:
        return error_response(400, problem)
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        return error_response(400, "the body is not UTF-8")
    except (ValueError, RecursionError) as error:
        return error_response(400, f"the body is not JSON: {str(error)[:120]}")
    if type(document) is not dict:
        return error_response(400, 'the body must be an event object or {"batch": [event, ...]}')
    if "batch" not in document:
        return ParsedBody([document], is_batch=False)
    extra = [key for key in document if key != "batch"]
    if extra:
        # The first few, cut: a body of many long keys must not come back larger.
        errors = [{"index": None, "field": cut_field(key) if is_text(key) else "?", "problem": "unknown field next to batch"}
                  for key in extra[:_LISTED_UNKNOWN_FIELDS]]
        if len(extra) > _LISTED_UNKNOWN_FIELDS:
            errors.append({"index": None, "field": "", "problem": f"{len(extra) - _LISTED_UNKNOWN_FIELDS} more unknown fields"})
        return error_response(400, "invalid request", errors=errors)
    batch = document["batch"]
    if type(batch) is not list:
        problem = "not a list"
    elif not batch:
        problem = "empty"
    elif len(batch) > MAX_BATCH_EVENTS:
        problem = f"more than {MAX_BATCH_EVENTS} events"
    else:
        return ParsedBody(batch, is_batch=True)
    return error_response(400, "invalid request", errors=[{"index": None, "field": "batch", "problem": problem}])


def _valid_ip(text: str | None) -> str | None:
    if not text:
        return None
    candidate = text.strip()
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def client_ip(source_ip: str | None, forwarded_for: str | None, trusted_hops: int) -> str:
    """The caller's IP address, '' if unknown.

    With ``trusted_hops`` = 0, X-Forwarded-For is ignored (anyone can write it) and the source
    IP is the caller. With N trusted proxies each appending the address they saw, the caller is
    the N-th entry from the right; when the header is shorter, the leftmost entry is the best
    known. Unparseable addresses count as unknown.
    """
    if trusted_hops > 0 and forwarded_for:
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if hops:
            return _valid_ip(hops[-min(trusted_hops, len(hops))]) or ""
    return _valid_ip(source_ip) or ""
