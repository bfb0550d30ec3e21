"""FcmClient to an https endpoint speaks HTTP/2 over TLS, as it will to fcm.googleapis.com.

The local FCM serves plain HTTP/1.1; this test stands up a minimal TLS server that speaks only
HTTP/2 (ALPN ``h2``, the h2 library's state machine) with a throwaway certificate the client is
told to trust through ``SSL_CERT_FILE``. The access token still comes from the local FCM's token
endpoint. A client falling back to HTTP/1.1, or a TLS path of the transport that does not work,
fails here.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading

import h2.config
import h2.connection
import h2.errors
import h2.events
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pistats.push.fcm import FcmClient, FcmConfig
from pistats.push.message import Content, build_message
from pistats.testing.fcm import LocalFcm

pytestmark = pytest.mark.integration

# Token prefix -> what the server does instead of answering (see Http2OnlyServer).
FAILURES = {"refused-": "refused", "reset-": "reset", "goaway-none-": "goaway-none", "goaway-this-": "goaway-this"}


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


class Http2OnlyServer:
    """Answers every POST with FCM's success body; records (method, path, authorization seen).

    A registration token starting with one of :data:`FAILURES`' prefixes gets that failure
    instead, once the whole request arrived: its stream reset, or the connection closed with a
    GOAWAY."""

    def __init__(self, cert_path, key_path):
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert_path, key_path)
        self.context.set_alpn_protocols(["h2"])
        self.requests: list[tuple[str, str, bool]] = []
        self.alpn: list[str | None] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader, writer):
        self.alpn.append(writer.get_extra_info("ssl_object").selected_alpn_protocol())
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        headers, bodies = {}, {}
        while data := await reader.read(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    headers[event.stream_id] = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
                elif isinstance(event, h2.events.StreamEnded):
                    seen = headers.pop(event.stream_id)
                    self.requests.append((seen[b":method"].decode(), seen[b":path"].decode(),
                                          seen.get(b"authorization", b"").startswith(b"Bearer ")))
                    token = orjson.loads(bodies.pop(event.stream_id))["message"]["token"]
                    failure = next((f for prefix, f in FAILURES.items() if token.startswith(prefix)), None)
                    if failure == "refused":
                        conn.reset_stream(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                        continue
                    if failure == "reset":
                        conn.reset_stream(event.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
                        continue
                    if failure in ("goaway-none", "goaway-this"):
                        conn.close_connection(h2.errors.ErrorCodes.NO_ERROR,
                                              last_stream_id=0 if failure == "goaway-none" else event.stream_id)
                        writer.write(conn.data_to_send())
                        await writer.drain()
                        writer.close()
                        return
                    body = orjson.dumps({"name": "projects/pistats-local/messages/0:1"})
                    conn.send_headers(event.stream_id, [(":status", "200"), ("content-type", "application/json"),
                                                        ("content-length", str(len(body)))])
                    conn.send_data(event.stream_id, body, end_stream=True)
            writer.write(conn.data_to_send())
            await writer.drain()
        writer.close()


def test_an_https_endpoint_is_spoken_to_in_http2_over_tls(tmp_path, monkeypatch):
    cert_path, key_path = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", cert_path)  # the client trusts this test's certificate only
    content = Content("Hello", "Over HTTP/2", "https://example.com/", "c_0123456789abcdef0123", "c_0123")
    with LocalFcm() as tokens, Http2OnlyServer(cert_path, key_path) as server:
        config = FcmConfig(f"https://localhost:{server.port}", tokens.write_credentials(tmp_path / "sa.json"),
                           timeout_s=10.0, max_connections=4)

        async def send_three():
            async with FcmClient(config) as fcm:
                assert fcm.http2
                return [await fcm.send(build_message(content, f"token-{n}-" + "t" * 40)) for n in range(3)]

        results = asyncio.run(send_three())
    assert [result.kind for result in results] == ["sent"] * 3
    assert server.alpn and set(server.alpn) == {"h2"}
    assert len(server.alpn) == 1  # one connection carried all three requests
    assert server.requests == [("POST", "/v1/projects/pistats-local/messages:send", True)] * 3


@pytest.mark.parametrize("prefix, kind", [
    ("refused-", "retry"),       # RST_STREAM REFUSED_STREAM: the server says it did not process it
    ("goaway-none-", "retry"),   # GOAWAY with last stream id 0: no stream was processed
    ("reset-", "unknown"),       # RST_STREAM INTERNAL_ERROR after the whole request: it may have been
    ("goaway-this-", "unknown"),  # GOAWAY naming our stream as the last processed
])
def test_http2_resets_and_goaways_are_retried_only_when_the_server_says_it_did_not_process_the_request(
        tmp_path, monkeypatch, prefix, kind):
    cert_path, key_path = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", cert_path)
    content = Content("Hello", "Over HTTP/2", "https://example.com/", "c_0123456789abcdef0123", "c_0123")
    with LocalFcm() as tokens, Http2OnlyServer(cert_path, key_path) as server:
        config = FcmConfig(f"https://localhost:{server.port}", tokens.write_credentials(tmp_path / "sa.json"),
                           timeout_s=10.0, max_connections=1)

        async def send_one():
            async with FcmClient(config) as fcm:
                return await fcm.send(build_message(content, prefix + "t" * 40))

        result = asyncio.run(send_one())
    assert (result.kind, result.code) == (kind, "NETWORK"), result.detail
    assert len(server.requests) == 1  # the request arrived whole each time; only the server's word differs
