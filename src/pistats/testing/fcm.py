"""A faithful local FCM HTTP v1: the token endpoint and ``messages:send``, answering from a script.

FCM is not reachable from here, and FCM has no emulator. This server keeps to the documented v1
API so that what passes against it holds against the real endpoint:

- ``POST /token``: the OAuth2 JWT bearer grant. The assertion's signature is checked with the
  key this server generated (and wrote into the service-account JSON it hands out), its ``aud``
  (Google's token endpoint, or this ``token_uri``), ``iss``, ``scope`` (must hold
  ``firebase.messaging``) and ``iat``/``exp``. Access tokens live ``token_lifetime_s``.
- ``POST /v1/projects/{project_id}/messages:send``: ``Authorization: Bearer`` must be a live
  token of this server (else 401 ``UNAUTHENTICATED``), the project must be this one (else 403
  ``PERMISSION_DENIED``), the body ``{"message": {...}, "validate_only"?}`` with exactly one of
  ``token``/``topic``/``condition``, known fields only, ``data`` values strings, an https
  ``webpush.fcm_options.link``, FCM's analytics-label pattern and at most 4,096 bytes
  (:func:`pistats.push.message.message_size`); a fault there is 400 ``INVALID_ARGUMENT`` with a
  ``google.rpc.BadRequest`` detail naming the field, as FCM does.
- Then the script answers, per exact token, else the longest matching token prefix, else the
  default (:func:`parse_answer` lists the answers). Counted answers (``quota:N:S``,
  ``unavailable:N``, ``internal:N``) count each token's own calls: a token's first N calls fail,
  later ones succeed.

Every ``messages:send`` is recorded (sha256 hex of the registration token, status, FCM error
code, monotonic time) in memory and, with ``calls_out``, as one JSON line per call written
unbuffered (a test that SIGKILLs the sender reads it). Registration tokens themselves are never
written anywhere.

The HTTP/1.1 server is asyncio streams with keep-alive, headers bounded to 16 KiB and bodies to
64 KiB (431/413 and the connection closed). Run it in a background thread of a test
(:class:`LocalFcm`) or as a process: ``python -m pistats.testing.fcm --port 0 --credentials-out
creds.json [--script script.json] [--calls-out calls.jsonl] [--token-lifetime S]`` prints its URL
on one line and runs until SIGTERM. Two non-FCM endpoints serve such a process's test:
``POST /_local/script`` (a script as JSON) and ``POST /_local/revoke`` (``{"future": bool}``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import math
import os
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as auth_exceptions
from google.auth import jwt

from pistats.push.message import MESSAGE_MAX_BYTES, message_size

HEADER_MAX_BYTES = 16 * 1024
BODY_MAX_BYTES = 64 * 1024
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
MESSAGE_FIELDS = {"name", "data", "notification", "android", "webpush", "apns", "fcm_options",
                  "token", "topic", "condition"}
TARGETS = ("token", "topic", "condition")
ANALYTICS_LABEL = re.compile(r"[a-zA-Z0-9\-_.~%]{1,50}")

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large",
            429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
            503: "Service Unavailable"}


# -- the script ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    """One scripted answer: ``kind`` with ``count`` failing calls (0: every call) and
    ``seconds`` (Retry-After for quota, the delay for slow)."""

    kind: str
    count: int = 0
    seconds: float = 0.0


ANSWER_KINDS = ("ok", "unregistered", "sender_id_mismatch", "invalid_token", "quota", "unavailable",
                "internal", "third_party_auth", "slow")


def parse_answer(text: str) -> Answer:
    """``ok``, ``unregistered``, ``sender_id_mismatch``, ``invalid_token`` (400 INVALID_ARGUMENT
    with an FcmError), ``quota:N:S`` (a token's first N calls 429 with ``Retry-After: S``),
    ``unavailable:N[:S]``, ``internal:N[:S]`` (first N calls 503/500, optional Retry-After),
    ``third_party_auth`` (401 THIRD_PARTY_AUTH_ERROR), ``slow:MS`` (answers ok after MS ms).

    >>> parse_answer("quota:2:0.5")
    Answer(kind='quota', count=2, seconds=0.5)
    """
    kind, *args = text.strip().split(":")
    try:
        if kind in ("ok", "unregistered", "sender_id_mismatch", "invalid_token", "third_party_auth") and not args:
            return Answer(kind)
        if kind == "quota" and len(args) == 2:
            return Answer(kind, int(args[0]), float(args[1]))
        if kind in ("unavailable", "internal") and len(args) in (1, 2):
            return Answer(kind, int(args[0]), float(args[1]) if len(args) == 2 else 0.0)
        if kind == "slow" and len(args) == 1:
            return Answer(kind, 0, float(args[0]) / 1000)
    except ValueError:
        pass
    raise ValueError(f"unknown answer {text!r}: one of ok, unregistered, sender_id_mismatch, invalid_token, "
                     "quota:N:S, unavailable:N[:S], internal:N[:S], third_party_auth, slow:MS")


@dataclass(frozen=True)
class Script:
    """Answers per exact token, else per longest token prefix, else ``default``."""

    default: str = "ok"
    tokens: Mapping[str, str] = field(default_factory=dict)
    prefixes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        for text in (self.default, *self.tokens.values(), *self.prefixes.values()):
            parse_answer(text)

    @classmethod
    def from_json(cls, data: Mapping | str | None) -> "Script":
        """From ``{"default": "ok", "tokens": {...}, "prefixes": {...}}`` or one answer for all."""
        if data is None:
            return cls()
        if isinstance(data, str):
            return cls(default=data)
        unknown = set(data) - {"default", "tokens", "prefixes"}
        if unknown:
            raise ValueError(f"unknown script keys {sorted(unknown)}")
        return cls(data.get("default", "ok"), dict(data.get("tokens", {})), dict(data.get("prefixes", {})))

    def compiled(self) -> Callable[[str], Answer]:
        tokens = {token: parse_answer(text) for token, text in self.tokens.items()}
        prefixes = sorted(((prefix, parse_answer(text)) for prefix, text in self.prefixes.items()),
                          key=lambda item: -len(item[0]))
        default = parse_answer(self.default)

        def answer(token: str) -> Answer:
            found = tokens.get(token)
            if found is not None:
                return found
            for prefix, chosen in prefixes:
                if token.startswith(prefix):
                    return chosen
            return default

        return answer


# -- answers ---------------------------------------------------------------------------------------

def error_body(code: int, status: str, message: str, fcm_code: str | None = None,
               violations: list[tuple[str, str]] | None = None) -> bytes:
    """A google.rpc.Status as FCM v1 answers it."""
    details = []
    if fcm_code:
        details.append({"@type": FCM_ERROR_TYPE, "errorCode": fcm_code})
    if violations:
        details.append({"@type": BAD_REQUEST_TYPE,
                        "fieldViolations": [{"field": f, "description": d} for f, d in violations]})
    error: dict = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return orjson.dumps({"error": error})


_SCRIPTED = {
    "unregistered": (404, error_body(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")),
    "sender_id_mismatch": (403, error_body(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")),
    "invalid_token": (400, error_body(400, "INVALID_ARGUMENT",
                                      "The registration token is not a valid FCM registration token",
                                      "INVALID_ARGUMENT")),
    "quota": (429, error_body(429, "RESOURCE_EXHAUSTED",
                              "Quota exceeded for quota metric 'Send requests' of service "
                              "'fcm.googleapis.com'.", "QUOTA_EXCEEDED")),
    "unavailable": (503, error_body(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE")),
    "internal": (500, error_body(500, "INTERNAL", "Internal error encountered.", "INTERNAL")),
    "third_party_auth": (401, error_body(401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service",
                                         "THIRD_PARTY_AUTH_ERROR")),
}
_CODES = {"unregistered": "UNREGISTERED", "sender_id_mismatch": "SENDER_ID_MISMATCH",
          "invalid_token": "INVALID_ARGUMENT", "quota": "QUOTA_EXCEEDED", "unavailable": "UNAVAILABLE",
          "internal": "INTERNAL", "third_party_auth": "THIRD_PARTY_AUTH_ERROR"}
_UNAUTHENTICATED = error_body(
    401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential.")


def message_faults(body: object) -> list[tuple[str, str]]:
    """What FCM would refuse in a ``messages:send`` body, as BadRequest field violations."""
    if not isinstance(body, dict):
        return [("", "Invalid JSON payload received. Expected an object.")]
    faults = [(name, f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
              for name in body if name not in ("message", "validate_only")]
    if "validate_only" in body and not isinstance(body["validate_only"], bool):
        faults.append(("validate_only", "Invalid value at 'validate_only' (TYPE_BOOL)"))
    message = body.get("message")
    if not isinstance(message, dict):
        return faults + [("message", "Required field message is missing or not an object")]
    for name in message:
        if name not in MESSAGE_FIELDS:
            faults.append((f"message.{name}", f'Invalid JSON payload received. Unknown name "{name}" '
                                              "at 'message': Cannot find field."))
    targets = [name for name in TARGETS if name in message]
    if len(targets) != 1:
        faults.append(("message", "Exactly one of token, topic or condition must be set"))
    for name in targets:
        if not isinstance(message[name], str) or not message[name]:
            faults.append((f"message.{name}", f"Invalid value at 'message.{name}' (TYPE_STRING)"))
    data = message.get("data")
    if data is not None:
        if not isinstance(data, dict):
            faults.append(("message.data", "Invalid value at 'message.data' (type.googleapis.com/google.protobuf.Struct)"))
        else:
            for index, value in enumerate(data.values()):
                if not isinstance(value, str):
                    faults.append((f"message.data[{index}].value",
                                   f"Invalid value at 'message.data[{index}].value' (TYPE_STRING), {orjson.dumps(value).decode()[:40]}"))
    notification = message.get("notification")
    if notification is not None:
        if not isinstance(notification, dict):
            faults.append(("message.notification", "Invalid value at 'message.notification'"))
        else:
            for name, value in notification.items():
                if name not in ("title", "body", "image"):
                    faults.append((f"message.notification.{name}", f'Unknown name "{name}" at \'message.notification\''))
                elif not isinstance(value, str):
                    faults.append((f"message.notification.{name}", f"Invalid value at 'message.notification.{name}' (TYPE_STRING)"))
    webpush = message.get("webpush")
    if webpush is not None:
        options = webpush.get("fcm_options") if isinstance(webpush, dict) else None
        link = options.get("link") if isinstance(options, dict) else None
        if not isinstance(webpush, dict) or (options is not None and not isinstance(options, dict)):
            faults.append(("message.webpush", "Invalid value at 'message.webpush'"))
        elif link is not None and (not isinstance(link, str) or not link.startswith("https://")):
            faults.append(("message.webpush.fcm_options.link", "HTTPS URL is required."))
    options = message.get("fcm_options")
    if options is not None:
        label = options.get("analytics_label") if isinstance(options, dict) else None
        if not isinstance(options, dict) or (label is not None and not (
                isinstance(label, str) and ANALYTICS_LABEL.fullmatch(label))):
            faults.append(("message.fcm_options.analytics_label",
                           "Analytics label must match ^[a-zA-Z0-9-_.~%]{1,50}$"))
    if not faults:
        try:
            size = message_size(message)
        except orjson.JSONEncodeError:
            size = MESSAGE_MAX_BYTES + 1
        if size > MESSAGE_MAX_BYTES:
            faults.append(("message", f"Message is too big: {size} bytes, limit {MESSAGE_MAX_BYTES}"))
    return faults


@dataclass
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


# -- the server's logic ----------------------------------------------------------------------------

class FcmServer:
    """The endpoints' logic and the asyncio HTTP/1.1 server around it (one event loop)."""

    def __init__(self, *, project_id: str = "pistats-local", script: Script | Mapping | str | None = None,
                 token_lifetime_s: float = 3600.0, calls_out: str | None = None, keep_messages: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        self.project_id = project_id
        self.token_lifetime_s = token_lifetime_s
        self.keep_messages = keep_messages
        self._clock = clock
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._key_id = secrets.token_hex(20)
        self._public_pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.client_email = f"pistats-local@{project_id}.iam.gserviceaccount.com"
        self.set_script(script)
        self._issued: dict[str, float] = {}  # access token -> monotonic expiry
        self._deny_all = False
        self._counts: dict[str, int] = {}
        self._calls: list[dict] = []
        self._messages: list[dict] = []
        self.grants = 0
        self._ids = itertools.count(1)
        self._calls_out = open(calls_out, "ab", buffering=0) if calls_out else None
        self._send_path = f"/v1/projects/{project_id}/messages:send".encode()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.url = ""

    # -- control (thread-safe enough: single assignments under the GIL)

    def set_script(self, script: Script | Mapping | str | None) -> None:
        script = script if isinstance(script, Script) else Script.from_json(script)
        self._answer = script.compiled()
        self._counts = {}

    def revoke(self, *, future: bool = False) -> None:
        """Every access token issued so far answers 401; with ``future``, later ones too (until
        :meth:`restore`)."""
        self._issued = {}
        self._deny_all = future

    def restore(self) -> None:
        self._deny_all = False

    def calls(self) -> list[dict]:
        return list(self._calls)

    def messages(self) -> list[dict]:
        return list(self._messages)

    def credentials(self) -> dict:
        """A service-account JSON of this server (real-shaped; the key is this server's own)."""
        pem = self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self._key_id,
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": "100000000000000000000",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": f"{self.url}/token",
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{self.client_email}",
            "universe_domain": "googleapis.com",
        }

    def write_credentials(self, path: str) -> str:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps(self.credentials(), option=orjson.OPT_INDENT_2))
        return path

    # -- endpoints

    def token(self, body: bytes) -> Reply:
        def refuse(error: str, description: str) -> Reply:
            return Reply(400, orjson.dumps({"error": error, "error_description": description}))

        try:
            form = parse_qs(body.decode("ascii"), strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            return refuse("invalid_request", "Malformed form body.")
        if form.get("grant_type") != [JWT_BEARER_GRANT] or len(form.get("assertion", [])) != 1:
            return refuse("unsupported_grant_type", "Invalid grant_type or assertion.")
        try:
            claims = jwt.decode(form["assertion"][0], certs=self._public_pem,
                                audience=[GOOGLE_TOKEN_AUDIENCE, f"{self.url}/token"])
        except (ValueError, auth_exceptions.GoogleAuthError):
            return refuse("invalid_grant", "Invalid JWT Signature.")
        if claims.get("iss") != self.client_email:
            return refuse("invalid_grant", "Invalid email or User ID")
        if SCOPE not in str(claims.get("scope", "")).split():
            return refuse("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        access_token = "ya29.local." + secrets.token_urlsafe(32)
        self._issued[access_token] = self._clock() + self.token_lifetime_s
        self.grants += 1
        lifetime = self.token_lifetime_s
        return Reply(200, orjson.dumps({"access_token": access_token,
                                        "expires_in": int(lifetime) if lifetime == int(lifetime) else lifetime,
                                        "token_type": "Bearer"}))

    def _record(self, token: str | None, status: int, code: str | None, message: dict | None) -> None:
        call = {"token_sha256": hashlib.sha256(token.encode()).hexdigest() if token else None,
                "status": status, "error_code": code, "t": self._clock()}
        self._calls.append(call)
        if self.keep_messages and message is not None:
            self._messages.append(message)
        if self._calls_out is not None:
            self._calls_out.write(orjson.dumps(call) + b"\n")

    async def send(self, authorization: bytes | None, body: bytes) -> Reply:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        message = parsed.get("message") if isinstance(parsed, dict) else None
        token = message.get("token") if isinstance(message, dict) and isinstance(message.get("token"), str) else None
        access_token = authorization[7:].decode("latin-1") if authorization and authorization[:7].lower() == b"bearer " else None
        expires = self._issued.get(access_token) if access_token else None
        if expires is None or self._deny_all or self._clock() >= expires:
            self._record(token, 401, "UNAUTHENTICATED", None)
            return Reply(401, _UNAUTHENTICATED, (("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"'),))
        faults = message_faults(parsed) if parsed is not None else [("", "Invalid JSON payload received.")]
        if faults:
            self._record(token, 400, "INVALID_ARGUMENT", message)
            return Reply(400, error_body(400, "INVALID_ARGUMENT", faults[0][1], violations=faults))
        answer = self._answer(token) if token is not None else parse_answer("ok")
        if answer.count:
            seen = self._counts.get(token, 0)
            self._counts[token] = seen + 1
            failing = seen < answer.count
        else:
            failing = answer.kind not in ("ok", "slow")
        if answer.kind == "slow":
            await asyncio.sleep(answer.seconds)
        if failing:
            status, reply = _SCRIPTED[answer.kind]
            headers = (("Retry-After", _seconds(answer.seconds)),) if answer.seconds and answer.kind != "slow" else ()
            self._record(token, status, _CODES[answer.kind], message)
            return Reply(status, reply, headers)
        self._record(token, 200, None, message)
        if parsed.get("validate_only"):
            return Reply(200, orjson.dumps({"name": f"projects/{self.project_id}/messages/fake_message_id"}))
        return Reply(200, b'{"name":"projects/%s/messages/0:%d%%%s"}' % (
            self.project_id.encode(), next(self._ids), secrets.token_hex(8).encode()))

    def control(self, path: bytes, body: bytes) -> Reply:
        try:
            data = orjson.loads(body) if body else {}
            if path == b"/_local/script":
                self.set_script(data)
            else:
                self.revoke(future=bool(data.get("future", False)))
        except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError) as error:
            return Reply(400, orjson.dumps({"error": str(error)[:200]}))
        return Reply(200, b"{}")

    # -- HTTP/1.1

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server = await asyncio.start_server(self._connection, host, port, limit=HEADER_MAX_BYTES,
                                                  reuse_address=True)
        bound = self._server.sockets[0].getsockname()
        self.url = f"http://{bound[0]}:{bound[1]}"
        return self.url

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None
        if self._calls_out is not None:
            self._calls_out.close()
            self._calls_out = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while await self._exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """One request and its answer; False when the connection is to be closed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            self._write(writer, Reply(431, b'{"error":"request headers over 16 KiB"}'), close=True)
            return False
        except asyncio.IncompleteReadError:
            return False
        lines = head[:-4].split(b"\r\n")
        try:
            method, target, version = lines[0].split(b" ")
        except ValueError:
            self._write(writer, Reply(400, b'{"error":"bad request line"}'), close=True)
            return False
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        keep_alive = version == b"HTTP/1.1" and headers.get(b"connection", b"").lower() != b"close"
        if b"transfer-encoding" in headers:
            self._write(writer, Reply(411, b'{"error":"Content-Length required"}'), close=True)
            return False
        try:
            length = int(headers.get(b"content-length", b"0"))
        except ValueError:
            length = -1
        if length < 0 or length > BODY_MAX_BYTES:
            self._write(writer, Reply(413, b'{"error":"body over 64 KiB"}'), close=True)
            return False
        body = await reader.readexactly(length) if length else b""
        path = target.split(b"?", 1)[0]
        if method != b"POST":
            reply = Reply(405, error_body(405, "METHOD_NOT_ALLOWED", "Only POST is served here."))
        elif path == self._send_path:
            reply = await self.send(headers.get(b"authorization"), body)
        elif path == b"/token":
            reply = self.token(body)
        elif path in (b"/_local/script", b"/_local/revoke"):
            reply = self.control(path, body)
        elif path.startswith(b"/v1/projects/") and path.endswith(b"/messages:send"):
            reply = Reply(403, error_body(403, "PERMISSION_DENIED",
                                          "Permission 'cloudmessaging.messages.create' denied on resource "
                                          "(or it may not exist)."))
        else:
            reply = Reply(404, error_body(404, "NOT_FOUND", "Requested entity was not found."))
        self._write(writer, reply, close=not keep_alive)
        if writer.transport.get_write_buffer_size() > 65536:
            await writer.drain()
        return keep_alive

    @staticmethod
    def _write(writer: asyncio.StreamWriter, reply: Reply, close: bool = False) -> None:
        extra = "".join(f"{name}: {value}\r\n" for name, value in reply.headers)
        writer.write((f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Error')}\r\n"
                      f"Content-Type: application/json; charset=UTF-8\r\nContent-Length: {len(reply.body)}\r\n"
                      f"{extra}{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n").encode() + reply.body)


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


# -- in a test's process ---------------------------------------------------------------------------

class LocalFcm:
    """The local FCM in a background thread (its own event loop): ``with LocalFcm() as fcm: ...``.

    Everything :class:`FcmServer` offers is reachable here too (``script``, ``revoke``,
    ``calls``, ``grants``); ``write_credentials(path)`` writes the JSON a client is configured with.
    """

    def __init__(self, port: int = 0, script: Script | Mapping | str | None = None, *, host: str = "127.0.0.1",
                 project_id: str = "pistats-local", token_lifetime_s: float = 3600.0,
                 calls_out: str | None = None, keep_messages: bool = False):
        self.server = FcmServer(project_id=project_id, script=script, token_lifetime_s=token_lifetime_s,
                                calls_out=calls_out, keep_messages=keep_messages)
        self._host, self._port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def project_id(self) -> str:
        return self.server.project_id

    @property
    def grants(self) -> int:
        return self.server.grants

    def start(self) -> "LocalFcm":
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self.server.start(self._host, self._port))
            except BaseException as error:  # reported to start()'s caller
                failure.append(error)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.server.close())
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="local-fcm", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> "LocalFcm":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def write_credentials(self, path) -> str:
        return self.server.write_credentials(str(path))

    def set_script(self, script: Script | Mapping | str | None) -> None:
        self._call(self.server.set_script, script)

    def revoke(self, *, future: bool = False) -> None:
        self._call(lambda: self.server.revoke(future=future))

    def restore(self) -> None:
        self._call(self.server.restore)

    def calls(self) -> list[dict]:
        return self.server.calls()

    def messages(self) -> list[dict]:
        return self.server.messages()

    def _call(self, function, *args) -> None:
        """Runs ``function`` on the server's loop (so a change lands between two requests)."""
        if self._loop is None or self._thread is None:
            function(*args)
            return
        done = threading.Event()
        failure: list[BaseException] = []

        def run():
            try:
                function(*args)
            except BaseException as error:
                failure.append(error)
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(10)
        if failure:
            raise failure[0]


# -- as a process ----------------------------------------------------------------------------------

def _read_script(path: str | None):
    if path is None:
        return None
    with open(path, "rb") as handle:
        return orjson.loads(handle.read())


async def _serve(args) -> None:
    server = FcmServer(project_id=args.project_id, script=_read_script(args.script),
                       token_lifetime_s=args.token_lifetime, calls_out=args.calls_out)
    url = await server.start(args.host, args.port)
    server.write_credentials(args.credentials_out)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(url, flush=True)
    await stop.wait()
    await server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pistats.testing.fcm",
                                     description="A local FCM HTTP v1 server (token endpoint and messages:send).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (the URL printed says which)")
    parser.add_argument("--credentials-out", required=True, help="where to write the service-account JSON")
    parser.add_argument("--script", help="JSON: {\"default\": ANSWER, \"tokens\": {...}, \"prefixes\": {...}}")
    parser.add_argument("--calls-out", help="append every messages:send call here as a JSON line")
    parser.add_argument("--token-lifetime", type=float, default=3600.0, help="access token lifetime, seconds")
    parser.add_argument("--project-id", default="pistats-local")
    args = parser.parse_args(argv)
    if not (args.token_lifetime > 0 and math.isfinite(args.token_lifetime)):
        parser.error("--token-lifetime must be > 0")
    try:
        _read_script(args.script) and Script.from_json(_read_script(args.script))
    except (OSError, ValueError) as error:
        parser.error(f"--script: {error}")
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
