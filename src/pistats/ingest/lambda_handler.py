"""AWS Lambda entry points: API Gateway REST (v1 payload), HTTP API (v2 payload) and ALB.

Configure the function's handler as one of

- ``pistats.ingest.lambda_handler.handler`` (detects the event format), or explicitly
- ``pistats.ingest.lambda_handler.apigw_v1_handler`` / ``apigw_v2_handler`` / ``alb_handler``.

The service (boto3 client, Redis connection, and the subscriber registry's PostgreSQL connection
when ``PISTATS_REGISTRY_URL`` is set, with welcome notifications through FCM when
``PISTATS_FCM_CREDENTIALS_SECRET_ARN`` names the Secrets Manager secret holding the service
account, as deploy/template.yaml sets it, or ``PISTATS_FCM_CREDENTIALS`` a file) is built from
environment variables on the first invocation (the secret fetched then, once; again every 60 s
while Secrets Manager refuses it or cannot be reached) and reused by every later invocation of
the same container.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading

from pistats.ingest.api import IngestRequest, IngestResponse, error_response

log = logging.getLogger(__name__)

APIGW_V1, APIGW_V2, ALB = "apigw_v1", "apigw_v2", "alb"

def detect_kind(event: dict) -> str:
    """The payload format of a Lambda event; ValueError for anything else."""
    context = event.get("requestContext") or {}
    if event.get("version") == "2.0" and "http" in context:
        return APIGW_V2
    if "elb" in context:
        return ALB
    if "httpMethod" in event:
        return APIGW_V1
    raise ValueError("not an API Gateway or ALB event")


def _body(event: dict) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body, validate=True)
    return body.encode("utf-8", "surrogatepass")


def _headers(event: dict):
    # API Gateway v1 sends both forms; the multi-value one keeps repeated headers.
    return event.get("multiValueHeaders") or event.get("headers") or {}


def request_from_event(event: dict, kind: str) -> IngestRequest:
    """Translate one Lambda event into an :class:`IngestRequest` (ValueError on a bad body encoding)."""
    try:
        body = _body(event)
    except (binascii.Error, ValueError):
        raise ValueError("the body is not valid base64") from None
    if kind == APIGW_V2:
        http = event["requestContext"]["http"]
        return IngestRequest.build(http["method"], event.get("rawPath") or http.get("path") or "/",
                                   event.get("headers") or {}, body, http.get("sourceIp"))
    if kind == APIGW_V1:
        identity = (event.get("requestContext") or {}).get("identity") or {}
        return IngestRequest.build(event["httpMethod"], event.get("path") or "/", _headers(event), body,
                                   identity.get("sourceIp"))
    if kind == ALB:
        request = IngestRequest.build(event["httpMethod"], event.get("path") or "/", _headers(event), body)
        # The ALB appends the peer it saw to X-Forwarded-For: that last entry is the source IP,
        # the rest is what the caller (or proxies before the ALB) claimed.
        hops = [h.strip() for h in (request.header("x-forwarded-for") or "").split(",") if h.strip()]
        headers = dict(request.headers)
        if hops:
            headers["x-forwarded-for"] = ", ".join(hops[:-1])
            if not hops[:-1]:
                del headers["x-forwarded-for"]
        return IngestRequest(request.method, request.path, headers, body, hops[-1] if hops else None)
    raise ValueError(f"unknown event kind {kind!r}")


def response_to_event(response: IngestResponse, kind: str, multi_value: bool = False) -> dict:
    """The Lambda result for ``kind``; ``multi_value`` when the request used multi-value headers
    (ALB then requires ``multiValueHeaders`` in the answer)."""
    headers = response.all_headers()
    result: dict = {"statusCode": response.status, "body": response.body_bytes().decode("utf-8"),
                    "isBase64Encoded": False}
    if kind == ALB:
        result["statusDescription"] = f"{response.status} {response.reason}".strip()
    if multi_value and kind in (ALB, APIGW_V1):
        grouped: dict[str, list[str]] = {}
        for name, value in headers:
            grouped.setdefault(name, []).append(value)
        result["multiValueHeaders"] = grouped
    else:
        result["headers"] = dict(headers)
    return result


def handle_event(service, event: dict, kind: str | None = None) -> dict:
    """Answer one Lambda event with ``service``; unexpected errors become a logged 500."""
    kind = kind or detect_kind(event)
    multi_value = "multiValueHeaders" in event and kind == ALB
    try:
        request = request_from_event(event, kind)
    except ValueError as error:
        return response_to_event(error_response(400, str(error)), kind, multi_value)
    try:
        response = service.handle(request)
    except Exception:
        log.exception("ingest failed on %r", request)
        response = error_response(500, "internal error")
    return response_to_event(response, kind, multi_value)


class LambdaApp:
    """The entry points of one container: the service is built by ``service_factory`` on the
    first invocation and reused by every later one."""

    def __init__(self, service_factory):
        self._factory = service_factory
        self._service = None
        self._lock = threading.Lock()

    def service(self):
        if self._service is None:
            with self._lock:
                if self._service is None:
                    self._service = self._factory()
        return self._service

    def handler(self, event, context):
        return handle_event(self.service(), event)

    def apigw_v1(self, event, context):
        return handle_event(self.service(), event, APIGW_V1)

    def apigw_v2(self, event, context):
        return handle_event(self.service(), event, APIGW_V2)

    def alb(self, event, context):
        return handle_event(self.service(), event, ALB)


def service_from_env():
    from pistats import registry
    from pistats.ingest.config import IngestConfig
    from pistats.ingest.service import build_service

    # PISTATS_REGISTRY_URL: one registry connection for the container, opened on first use.
    subscribers = registry.from_env()
    welcome = None
    if subscribers is None:
        log.warning("subscriber registry off (no PISTATS_REGISTRY_URL): events go to Kinesis only")
    else:
        # Says once why it is off; imports httpx and google-auth only when FCM is configured.
        from pistats.push.welcome import welcomer_from_env

        welcome = welcomer_from_env(subscribers)
    return build_service(IngestConfig.from_env(), registry=subscribers, welcome=welcome)


app = LambdaApp(service_from_env)
handler = app.handler
apigw_v1_handler = app.apigw_v1
apigw_v2_handler = app.apigw_v2
alb_handler = app.alb
