"""The thin FCM HTTP v1 client: one ``messages:send`` per call, every answer a :class:`SendResult`.

No retry loop lives here (the campaign engine owns retries and pacing), with one exception: a 401
``UNAUTHENTICATED`` drops the cached access token, refreshes it once and sends again.

==============================  ==================================================  ==============================
variable                        meaning                                             default
==============================  ==================================================  ==============================
``PISTATS_FCM_ENDPOINT``        base URL of the FCM v1 API (http:// for the local    ``https://fcm.googleapis.com``
                                FCM of :mod:`pistats.testing.fcm`)
``PISTATS_FCM_CREDENTIALS``     path of a service-account JSON; its ``project_id``   (required, unless the secret
                                and ``token_uri`` are used                          below is set)
==============================  ==================================================  ==============================

Instead of the file, ``PISTATS_FCM_CREDENTIALS_SECRET_ARN`` may name a Secrets Manager secret
holding that JSON (its SecretString), read once with boto3 (:func:`fetch_secret`): the Lambda's
way, deploy/template.yaml granting ``secretsmanager:GetSecretValue`` on that secret alone.

Secrets (the private key, access tokens, registration tokens) never appear in a repr, an
exception or a :class:`SendResult`: FCM's messages are masked (:func:`classify`) before they are kept.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

import httpx
import orjson
from google.auth import exceptions as auth_exceptions
from google.auth import transport as auth_transport
from google.oauth2 import service_account

from pistats.errors import ConfigError
from pistats.push.message import request_body
from pistats.push.transport import fcm_transport

ENDPOINT_VARIABLE = "PISTATS_FCM_ENDPOINT"
CREDENTIALS_VARIABLE = "PISTATS_FCM_CREDENTIALS"
SECRET_VARIABLE = "PISTATS_FCM_CREDENTIALS_SECRET_ARN"
SECRET_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+")
DEFAULT_ENDPOINT = "https://fcm.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
REFRESH_MARGIN_S = 300.0
RETRY_AFTER_MAX_S = 3600.0
DETAIL_MAX_CHARS = 300
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
SERVICE_ACCOUNT_FIELDS = ("project_id", "private_key", "client_email", "token_uri")

KINDS = ("sent", "invalid_token", "payload_error", "retry", "unknown", "abort")


# -- configuration ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class FcmConfig:
    """Where FCM is and how hard to push it. ``max_connections`` bounds the connection pool (over
    HTTP/2 one connection carries many requests at once; over HTTP/1.1 one request each). The
    service account is the file at ``credentials_path``, or ``credentials_json`` when given (the
    secret's value, kept in memory, out of the repr; ``credentials_path`` then says where it came
    from)."""

    endpoint: str
    credentials_path: str
    timeout_s: float = 10.0
    max_connections: int = 100
    credentials_json: bytes | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        try:
            parts = httpx.URL(self.endpoint)
            good = parts.scheme in ("http", "https") and bool(parts.host)
        except (httpx.InvalidURL, TypeError):
            good = False
        if not good:
            raise ConfigError(ENDPOINT_VARIABLE, f"must be an http:// or https:// URL, not {self.endpoint!r}")
        if not self.timeout_s > 0:
            raise ConfigError("timeout_s", "must be > 0")
        if self.max_connections < 1:
            raise ConfigError("max_connections", "must be >= 1")

    @property
    def http2(self) -> bool:
        """HTTP/2 to https endpoints (FCM's own), HTTP/1.1 to plain http ones (the local FCM)."""
        return self.endpoint.lower().startswith("https://")

    def credentials_info(self) -> dict:
        """The service-account JSON, checked; :class:`ConfigError` naming where it came from
        (never quoting its content) when it cannot be used."""
        return self.load_credentials()[0]

    def load_credentials(self) -> tuple[dict, service_account.Credentials]:
        """:func:`load_credentials` of the file, or of ``credentials_json``."""
        if self.credentials_json is not None:
            return parse_credentials(self.credentials_json, "the secret's value", SECRET_VARIABLE)
        return load_credentials(self.credentials_path)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, endpoint: str | None = None,
                 credentials: str | None = None, secrets_client=None, **overrides) -> "FcmConfig":
        """The config from the arguments, else the environment: the service account from the file
        ``credentials`` or ``PISTATS_FCM_CREDENTIALS``, else from the Secrets Manager secret
        ``PISTATS_FCM_CREDENTIALS_SECRET_ARN`` (fetched here, once: :func:`fetch_secret`, with
        ``secrets_client`` when given). Either is read and checked here so that a bad one is
        reported before anything is sent."""
        env = os.environ if environ is None else environ
        path = credentials or env.get(CREDENTIALS_VARIABLE)
        arn = env.get(SECRET_VARIABLE)
        values = {k: v for k, v in overrides.items() if v is not None}
        endpoint = (endpoint or env.get(ENDPOINT_VARIABLE) or DEFAULT_ENDPOINT).rstrip("/")
        if path and arn and not credentials:
            raise ConfigError(SECRET_VARIABLE, f"and {CREDENTIALS_VARIABLE} are both set: set one")
        if path:
            read_credentials(path)
            return cls(endpoint=endpoint, credentials_path=path, **values)
        if arn:
            raw = fetch_secret(arn, secrets_client)
            parse_credentials(raw, "the secret's value", SECRET_VARIABLE)
            return cls(endpoint=endpoint, credentials_path=f"secret {arn}", credentials_json=raw, **values)
        raise ConfigError(CREDENTIALS_VARIABLE, "is not set: the path of the service-account JSON (or set "
                                                f"{SECRET_VARIABLE}: a Secrets Manager secret holding it)")


class SecretUnreadable(ConfigError):
    """The secret could not be read from Secrets Manager (refused, throttled, unreachable), as
    opposed to a configuration that can never work (a malformed ARN, an unusable value)."""


def fetch_secret(arn: str, client=None) -> bytes:
    """The value of the Secrets Manager secret ``arn`` (its SecretString, else SecretBinary): one
    ``GetSecretValue`` call. ``client`` is a boto3 ``secretsmanager`` client; by default one for
    the ARN's region, with the default credential chain (a Lambda's role). :class:`ConfigError`
    naming ``PISTATS_FCM_CREDENTIALS_SECRET_ARN`` and AWS's error code, never the value;
    :class:`SecretUnreadable` (one) when Secrets Manager refused or could not be reached, which
    an operator or time may mend (a role's policy, throttling, a network outage)."""
    if not SECRET_ARN.fullmatch(arn):
        raise ConfigError(SECRET_VARIABLE, "must be a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:"
                                           "ACCOUNT:secret:NAME)")
    from botocore.exceptions import BotoCoreError, ClientError  # boto3: the Lambda runtime's, this venv's

    try:
        if client is None:
            import boto3

            client = boto3.client("secretsmanager", region_name=arn.split(":")[3])
        answer = client.get_secret_value(SecretId=arn)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code") or "ClientError"
        raise SecretUnreadable(SECRET_VARIABLE, f"could not be read from Secrets Manager ({code})") from None
    except BotoCoreError as error:
        raise SecretUnreadable(SECRET_VARIABLE,
                               f"could not be read from Secrets Manager ({type(error).__name__})") from None
    value = answer.get("SecretString")
    value = value.encode("utf-8") if isinstance(value, str) else answer.get("SecretBinary")
    if not value:
        raise ConfigError(SECRET_VARIABLE, "names a secret without a value")
    return bytes(value)


def read_credentials(path: str) -> dict:
    """The service-account JSON at ``path``, with the fields the client uses and a readable key."""
    return load_credentials(path)[0]


def load_credentials(path: str) -> tuple[dict, service_account.Credentials]:
    """:func:`read_credentials` and google-auth's credentials built from it: parsing the RSA key
    takes a quarter of a second of CPU, so a client takes both from one reading."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise ConfigError(CREDENTIALS_VARIABLE, f"cannot be read ({path}: {error.strerror})") from None
    return parse_credentials(raw, path)


def parse_credentials(raw: bytes, where: str, variable: str = CREDENTIALS_VARIABLE
                      ) -> tuple[dict, service_account.Credentials]:
    """A service-account JSON's fields and google-auth's credentials from its bytes; ConfigError
    naming ``variable`` and ``where`` it came from (never quoting the content) when unusable."""
    try:
        info = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ConfigError(variable, f"is not JSON ({where})") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ConfigError(variable, f"is not a service-account JSON (\"type\": \"service_account\") ({where})")
    missing = [name for name in SERVICE_ACCOUNT_FIELDS if not isinstance(info.get(name), str) or not info[name]]
    if missing:
        raise ConfigError(variable, f"lacks {', '.join(missing)} ({where})")
    try:
        credentials = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
    except (ValueError, TypeError):
        # google-auth's message may quote the key material: say what, not how.
        raise ConfigError(variable, f"holds a private_key that cannot be read ({where})") from None
    return info, credentials


# -- access tokens ---------------------------------------------------------------------------------

class _Response(auth_transport.Response):
    def __init__(self, response: httpx.Response):
        self._status = response.status_code
        self._headers = dict(response.headers)
        self._data = response.content

    @property
    def status(self):
        return self._status

    @property
    def headers(self):
        return self._headers

    @property
    def data(self):
        return self._data


class HttpxRequest(auth_transport.Request):
    """google-auth's transport interface on a sync ``httpx.Client`` (no ``requests`` needed)."""

    def __init__(self, client: httpx.Client, timeout_s: float = 10.0):
        self._client = client
        self._timeout_s = timeout_s

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        try:
            response = self._client.request(method, url, content=body, headers=headers,
                                            timeout=self._timeout_s if timeout is None else timeout)
        except httpx.HTTPError as error:
            raise auth_exceptions.TransportError(f"{type(error).__name__} calling the token endpoint") from None
        return _Response(response)


class AccessTokens:
    """OAuth2 access tokens of a service account (JWT bearer grant to the file's ``token_uri``),
    cached until :data:`REFRESH_MARGIN_S` before they expire (half their lifetime for tokens
    living less than twice that: short-lived tokens of tests).

    ``clock`` is monotonic seconds; google-auth's absolute expiry is turned into a lifetime at
    once and counted from before the grant was asked for, so the cache errs on the early side.
    :meth:`get` blocks (the grant is an HTTP call): async code calls it through
    ``asyncio.to_thread`` when :meth:`current` has nothing. Thread-safe.
    """

    def __init__(self, credentials_info: Mapping, *, http: httpx.Client, clock: Callable[[], float] = time.monotonic,
                 timeout_s: float = 10.0, credentials: service_account.Credentials | None = None):
        """``credentials``: google-auth's, already built from ``credentials_info`` (:func:`load_credentials`)."""
        self._credentials = credentials or service_account.Credentials.from_service_account_info(
            dict(credentials_info), scopes=[SCOPE])
        self._request = HttpxRequest(http, timeout_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[str | None, float] = (None, -math.inf)  # (token, valid until): swapped whole
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"AccessTokens(service_account={self._credentials.service_account_email!r})"

    def current(self) -> str | None:
        """The cached token while it is fresh, else None (never blocks)."""
        token, valid_until = self._cached
        if token is not None and self._clock() < valid_until:
            return token
        return None

    def get(self) -> str:
        """A fresh token, asking the token endpoint when the cached one is stale.

        Raises google-auth's ``RefreshError`` (the grant was refused) or ``TransportError``."""
        with self._lock:
            token = self.current()
            if token is not None:
                return token
            started = self._clock()
            self._credentials.refresh(self._request)
            self.refreshes += 1
            expiry = self._credentials.expiry
            if expiry is None:
                lifetime = math.inf
            else:
                now = datetime.now(timezone.utc).replace(tzinfo=None)  # google-auth keeps naive UTC
                lifetime = (expiry - now).total_seconds()
            margin = min(REFRESH_MARGIN_S, lifetime / 2) if lifetime != math.inf else 0.0
            token = self._credentials.token
            self._cached = (token, started + lifetime - margin)
            return token

    def invalidate(self, stale: str | None = None) -> None:
        """Forget the cached token (only if it is still ``stale`` when given: many sends may see
        the same 401, and the first one's refresh must not be thrown away by the others)."""
        with self._lock:
            if stale is None or stale == self._cached[0]:
                self._cached = (None, -math.inf)


# -- outcomes --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SendResult:
    """The outcome of one send. ``kind``: ``sent`` (``name`` is FCM's message name),
    ``invalid_token`` (drop the subscription), ``payload_error`` (our message is wrong: stop,
    keep tokens), ``retry`` (FCM certainly did not act on it: later, after ``retry_after_s`` if
    FCM said), ``unknown`` (the request may have reached FCM, no answer came: never sent again,
    see :func:`network_failure`), ``abort`` (our credentials or project are wrong: stop, keep
    tokens). ``code`` is FCM's errorCode, else the google.rpc status, else ``HTTP_<status>`` /
    ``NETWORK`` / ``TIMEOUT`` / ``AUTH``; ``detail`` is FCM's message with tokens masked, at most
    300 characters."""

    kind: str
    code: str | None = None
    detail: str = ""
    http_status: int | None = None
    retry_after_s: float | None = None
    name: str | None = None


_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-:]{40,}")  # FCM registration tokens, access tokens (ya29...)
MASK = "***"
MASKED_TOKEN_MIN_CHARS = 8

_RETRY_CODES = {"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "ABORTED"}
_INVALID_TOKEN_CODES = {"UNREGISTERED", "SENDER_ID_MISMATCH"}
_ABORT_CODES = {"THIRD_PARTY_AUTH_ERROR", "APNS_AUTH_ERROR", "UNAUTHENTICATED", "PERMISSION_DENIED", "NOT_FOUND"}


def mask(text: str, token: str | None = None) -> str:
    """``text`` with ``token`` and anything token-shaped (40+ characters of a token's alphabet)
    replaced by ``***``, cut to :data:`DETAIL_MAX_CHARS`. A ``token`` shorter than
    :data:`MASKED_TOKEN_MIN_CHARS` is a test's name, not a secret (FCM's are 100+ characters):
    masking it would mangle every word it occurs in."""
    if token and len(token) >= MASKED_TOKEN_MIN_CHARS:
        text = text.replace(token, MASK)
    text = _TOKEN_LIKE.sub(MASK, text)
    return text[:DETAIL_MAX_CHARS]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    try:
        value = headers.get(name)
        if value is None:
            lowered = name.lower()
            value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == lowered), None)
    except Exception:  # a hostile Mapping: no header
        return None
    return value if isinstance(value, str) else None


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``Retry-After`` in seconds, bounded to 0..3600: delta-seconds, or an HTTP date measured
    from the answer's own ``Date`` header (no clock skew), else from ``now`` (epoch seconds)."""
    value = _header(headers, "Retry-After")
    if value is None:
        return None
    value = value.strip()
    seconds: float | None = None
    try:
        seconds = float(value)
        if not math.isfinite(seconds):
            seconds = None
    except ValueError:
        when = _http_date(value)
        if when is None:
            return None
        date = _header(headers, "Date")
        reference = _http_date(date) if date is not None else None
        if reference is None:
            reference = now
        if reference is None:
            return None
        seconds = when - reference
    if seconds is None:
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


def _http_date(value: str) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


def _code(value: str | None, token: str | None) -> str | None:
    """An error code as FCM and google.rpc spell them (UPPER_SNAKE), else None: a code is kept
    in results and logs as it is, so nothing else (nor the token) may pass for one."""
    if value is None or not _CODE.fullmatch(value) or (token and token in value):
        return None
    return value


def _kind_by_status(status: int) -> str:
    if 200 <= status < 300:
        return "sent"
    if status in (408, 429) or status >= 500:
        return "retry"
    if status == 400:
        return "payload_error"
    return "abort"


def classify(status: int, headers: Mapping[str, str], body: bytes, *, token: str | None = None,
             now: float | None = None) -> SendResult:
    """What an FCM v1 answer means (pure; any status, headers and bytes give a result).

    ``INVALID_ARGUMENT`` is the subtle one: FCM answers it both for a bad registration token
    (an ``FcmError`` detail, message about the registration token) and for a bad message (a
    ``google.rpc.BadRequest`` detail naming the fields). Only the first invalidates the token
    (a BadRequest on ``message.token`` too); anything doubtful is a ``payload_error``, which
    stops the campaign and keeps every token, because a wrongly invalidated subscription is lost.
    ``token`` (the registration token sent) is masked out of the detail; ``now`` (epoch seconds)
    serves a ``Retry-After`` date when the answer has no ``Date``.
    """
    try:
        return _classify(int(status), headers, body, token, now)
    except Exception:  # pragma: no cover - the parser is written not to raise; belt and braces
        return SendResult(_kind_by_status(int(status)) if isinstance(status, int) else "abort",
                          f"HTTP_{status}", "", status if isinstance(status, int) else None)


def _classify(status: int, headers, body, token, now) -> SendResult:
    try:
        data = orjson.loads(body) if body else None
    except (orjson.JSONDecodeError, TypeError):
        data = None
    wait = retry_after(headers, now) if status >= 400 else None
    if 200 <= status < 300:
        name = data.get("name") if isinstance(data, dict) else None
        return SendResult("sent", http_status=status, name=name if isinstance(name, str) else None)

    error = data.get("error") if isinstance(data, dict) else None
    error = error if isinstance(error, dict) else {}
    rpc_status = error.get("status") if isinstance(error.get("status"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    details = error.get("details") if isinstance(error.get("details"), list) else []
    fcm_code = None
    violations: list[tuple[str, str]] = []
    bad_request = False
    for detail in details:
        if not isinstance(detail, dict):
            continue
        kind = detail.get("@type")
        if kind == FCM_ERROR_TYPE and isinstance(detail.get("errorCode"), str) and fcm_code is None:
            fcm_code = detail["errorCode"]
        elif kind == BAD_REQUEST_TYPE:
            bad_request = True
            field_violations = detail.get("fieldViolations")
            for violation in field_violations if isinstance(field_violations, list) else []:
                if isinstance(violation, dict):
                    field = violation.get("field")
                    description = violation.get("description")
                    violations.append((field if isinstance(field, str) else "",
                                       description if isinstance(description, str) else ""))
    if not message and data is None and body:
        message = bytes(body[:DETAIL_MAX_CHARS * 4]).decode("utf-8", "replace")
    fcm_code, rpc_status = _code(fcm_code, token), _code(rpc_status, token)
    code = fcm_code or rpc_status or f"HTTP_{status}"

    if code in _INVALID_TOKEN_CODES:
        kind = "invalid_token"
    elif code == "INVALID_ARGUMENT":
        fields = [field for field, _ in violations]
        if "message.token" in fields:
            kind = "invalid_token"
        elif fcm_code == "INVALID_ARGUMENT" and not bad_request and "registration token" in message.lower():
            kind = "invalid_token"
        else:
            kind = "payload_error"
    elif code in _RETRY_CODES:
        kind = "retry"
    elif code in _ABORT_CODES:
        kind = "abort"
    else:
        kind = _kind_by_status(status)
        if kind == "sent":  # an error body on a 2xx cannot happen; never count it as sent
            kind = "abort"
    detail = message
    if violations:
        detail += " [" + "; ".join(f"{field}: {description}" for field, description in violations) + "]"
    return SendResult(kind, code, mask(detail, token), status, wait)


# -- network failures ------------------------------------------------------------------------------

# httpx's errors raised before FCM could act on the request: no connection (none opened, none
# free in the pool, the scheme refused), or the request not fully written (FCM cannot act on a
# partial request; pistats.push.transport drops a half-written request's rest on a write timeout).
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteError,
                    httpx.WriteTimeout, httpx.UnsupportedProtocol)


def network_failure(error: BaseException, token: str | None = None) -> SendResult:
    """What a ``messages:send`` that failed on the network means, the one rule of both senders
    (the campaign's :class:`FcmClient`, the welcome's :class:`~pistats.push.fcm_sync.SyncFcmSender`):

    - FCM certainly did not get the request (:func:`request_may_have_arrived` is False): ``retry``,
      code ``NETWORK``;
    - it may have (the answer timed out, the connection broke after the request was written): an
      ``unknown`` send, code ``TIMEOUT`` when no answer came in time, else ``NETWORK``. FCM has no
      idempotency key and a duplicate push annoys more than a missing one: it is never sent again.

    ``token`` (the registration token) is masked out of the detail."""
    detail = f"{type(error).__name__}: {mask(str(error), token)}"[:DETAIL_MAX_CHARS]
    if not request_may_have_arrived(error):
        return SendResult("retry", "NETWORK", detail)
    timed_out = isinstance(error, (httpx.TimeoutException, TimeoutError)) or getattr(error, "timed_out", False) is True
    return SendResult("unknown", "TIMEOUT" if timed_out else "NETWORK", detail)


def request_may_have_arrived(error: BaseException) -> bool:
    """False only when FCM certainly did not act on the request ``error`` interrupted:

    - :mod:`pistats.push.http1`'s errors say it themselves (``sent``);
    - httpx's: connecting failed or timed out, no connection was free in time, the request was not
      fully written (:data:`_NOT_SENT_ERRORS`);
    - HTTP/2: the server reset our stream with ``REFUSED_STREAM``, or closed the connection with
      ``GOAWAY`` naming no stream as processed (last stream id 0): RFC 9113 §8.7 says such a
      request was not processed. (A ``GOAWAY`` below our stream's id never reaches us: httpcore
      sends the request again on another connection.)

    Anything else may have arrived: a read timeout, a connection reset or closed before the
    answer, any other stream reset or ``GOAWAY``, an error this function does not know."""
    sent = getattr(error, "sent", None)
    if isinstance(sent, bool):
        return sent
    if isinstance(error, _NOT_SENT_ERRORS):
        return False
    if isinstance(error, httpx.RemoteProtocolError):
        return not _h2_unprocessed(error.__cause__)
    return True


def _h2_unprocessed(cause: BaseException | None) -> bool:
    """Whether httpcore's RemoteProtocolError ``cause`` carries an h2 event saying the server
    did not process the stream (httpcore raises it with the event as its argument)."""
    event = cause.args[0] if cause is not None and cause.args else None
    if event is None or type(event).__module__ != "h2.events":
        return False
    import h2.errors  # imported by httpcore already for every HTTP/2 connection
    import h2.events

    if isinstance(event, h2.events.StreamReset):
        return event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
    if isinstance(event, h2.events.ConnectionTerminated):
        return event.last_stream_id == 0
    return False


# -- the client ------------------------------------------------------------------------------------

class FcmClient:
    """``async with FcmClient(config) as fcm: result = await fcm.send(message)``.

    HTTP/2 to https endpoints (many streams on few connections; httpx + h2 on
    :func:`pistats.push.transport.fcm_transport`), HTTP/1.1 to http ones (the local FCM:
    :class:`pistats.push.http1.Http1Client`, about a tenth of httpx's CPU per request); at most
    ``config.max_connections`` connections. ``transport`` (an ``httpx.AsyncBaseTransport``)
    replaces the network in tests (httpx then serves every endpoint), ``token_transport`` (an
    ``httpx.BaseTransport``) the token endpoint. ``clock`` (monotonic seconds) times the token cache; ``wall`` (epoch seconds) reads a
    ``Retry-After`` date when FCM's answer has no ``Date``. :meth:`send` never raises for what
    HTTP or the network does.
    """

    def __init__(self, config: FcmConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 token_transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        info, credentials = config.load_credentials()
        self.config = config
        self.project_id: str = info["project_id"]
        self.url = f"{config.endpoint.rstrip('/')}/v1/projects/{self.project_id}/messages:send"
        self._send_url = httpx.URL(self.url)  # parsed once
        self.http2 = config.http2
        self._wall = wall
        self._token_http = httpx.Client(timeout=config.timeout_s, transport=token_transport)
        self.tokens = AccessTokens(info, http=self._token_http, clock=clock, timeout_s=config.timeout_s,
                                   credentials=credentials)
        self._http: httpx.AsyncClient | None = None
        self._http1 = None  # a pistats.push.http1.Http1Client for http:// endpoints
        self._head: tuple[str | None, bytes] = (None, b"")  # (access token, the request head up to Content-Length)
        if transport is None and not self.http2:
            # Imported here: the ingest's welcome sender (fcm_sync, on httpx) imports this module,
            # and the Lambda zip ships only what its handler imports.
            from pistats.push import http1

            self._h1 = http1
            url = self._send_url
            self._http1 = http1.Http1Client(url.host, url.port or 80, max_connections=config.max_connections,
                                            timeout_s=config.timeout_s)
            host = url.netloc.decode("ascii")
            self._head_start = (f"POST {url.raw_path.decode('ascii')} HTTP/1.1\r\nHost: {host}\r\n"
                                "Content-Type: application/json; charset=UTF-8\r\nAuthorization: Bearer ").encode("ascii")
        else:
            if transport is None:
                transport = fcm_transport(http2=self.http2, max_connections=config.max_connections)
            limits = httpx.Limits(max_connections=config.max_connections,
                                  max_keepalive_connections=config.max_connections)
            self._http = httpx.AsyncClient(http2=self.http2, limits=limits, timeout=httpx.Timeout(config.timeout_s),
                                           transport=transport)
        self._refreshing: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"FcmClient(url={self.url!r}, http2={self.http2})"

    @property
    def client_kind(self) -> str:
        """Who sends ``messages:send``: ``http1`` (:mod:`pistats.push.http1`, http:// endpoints)
        or ``httpx`` (https:// endpoints over HTTP/2, or a transport given)."""
        return "http1" if self._http1 is not None else "httpx"

    async def __aenter__(self) -> "FcmClient":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._http1 is not None:
            await self._http1.aclose()
        self._token_http.close()

    async def _access_token(self) -> str | SendResult:
        token = self.tokens.current()
        if token is not None:
            return token
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        async with self._refreshing:  # one grant in flight; the others wait for it
            try:
                return await asyncio.to_thread(self.tokens.get)
            except auth_exceptions.RefreshError as error:
                retryable = bool(getattr(error, "retryable", False))
                return SendResult("retry" if retryable else "abort", "AUTH", _refresh_detail(error))
            except auth_exceptions.TransportError as error:
                return SendResult("retry", "NETWORK", mask(str(error)))

    async def send(self, message: dict) -> SendResult:
        """One attempt (plus one refresh-and-resend on 401 ``UNAUTHENTICATED``)."""
        body = request_body(message)
        registration_token = message.get("token") if isinstance(message.get("token"), str) else None
        result = SendResult("abort", "UNAUTHENTICATED")
        for attempt in range(2):
            access_token = await self._access_token()
            if isinstance(access_token, SendResult):
                return access_token
            if self._http1 is not None:
                answer = await self._send_http1(access_token, body, registration_token)
                if isinstance(answer, SendResult):
                    return answer
                status, headers, content = answer.status, answer.headers, answer.body
            else:
                try:
                    request = httpx.Request("POST", self._send_url, content=body, headers={
                        "Authorization": f"Bearer {access_token}",
                        "Content-Type": "application/json; charset=UTF-8",
                    })
                    response = await self._http.send(request)
                except httpx.HTTPError as error:
                    return network_failure(error, registration_token)
                status, headers, content = response.status_code, response.headers, response.content
            result = classify(status, headers, content, token=registration_token, now=self._wall())
            if result.code == "UNAUTHENTICATED" and attempt == 0:
                self.tokens.invalidate(access_token)
                continue
            return result
        return result


    async def _send_http1(self, access_token: str, body: bytes, registration_token: str | None):
        """FCM's answer (a ``pistats.push.http1.Response``), or the SendResult of a failure."""
        http1 = self._h1
        cached_token, head = self._head
        if cached_token != access_token:
            if not _HEADER_SAFE.fullmatch(access_token):
                return SendResult("abort", "AUTH", "the token endpoint gave an access token that cannot be a header")
            head = self._head_start + access_token.encode("ascii") + b"\r\nContent-Length: "
            self._head = (access_token, head)
        try:
            return await self._http1.exchange(b"%s%d\r\n\r\n%s" % (head, len(body), body))
        except http1.Http1Error as error:
            return network_failure(error, registration_token)


_HEADER_SAFE = re.compile(r"[\x21-\x7e]{1,4096}")  # an access token as a header value: visible ASCII


def _refresh_detail(error: Exception) -> str:
    """The token endpoint's ``error``/``error_description``, never the whole answer."""
    data = error.args[1] if len(error.args) > 1 else None
    if isinstance(data, dict):
        parts = [data.get("error"), data.get("error_description")]
        text = ": ".join(part for part in parts if isinstance(part, str))
    else:
        text = "the token endpoint refused the grant"
    return mask("access token refresh failed: " + text)
