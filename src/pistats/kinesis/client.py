"""The one boto3 Kinesis client factory, for the CLI, the consumer (spout) and the ingest service.

Credentials come from the AWS default chain, with one exception, as ``awslocal`` makes it: an
endpoint URL on this machine (``localhost``, a loopback address) is an emulator (kinesis-local,
moto), which accepts any credentials, so when the chain finds none the client signs with the
dummy pair ``test``/``test`` rather than stopping at "Unable to locate credentials". Never for
another endpoint: nothing made up is ever sent to AWS.

The consumer's client reads GetRecords answers with ``pistats.kinesis.get_records``: botocore
still signs, sends, retries and raises (``ClientError`` with the same codes); only a successful
GetRecords body is read by orjson instead of botocore's generic shape walk.
"""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
EMULATOR_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def is_local_endpoint(endpoint_url: str | None) -> bool:
    """True if ``endpoint_url`` names this machine: ``localhost`` (or a ``*.localhost`` name) or a
    loopback address (127.0.0.0/8, ``::1``)."""
    if not endpoint_url:
        return False
    try:
        host = urlsplit(endpoint_url).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_kinesis_client(endpoint_url: str | None = None, region: str | None = None, *, retries: bool = True,
                   connect_timeout_s: float = 5.0, read_timeout_s: float = 30.0,
                   max_pool_connections: int = 10, session=None, fast_get_records: bool = False):
    """A boto3 Kinesis client for ``endpoint_url`` (None: AWS) in ``region`` (None: the
    session's region, else us-east-1).

    ``retries=True`` keeps botocore's standard retries (up to 3 after the first attempt);
    ``retries=False`` makes one attempt per call, for callers with their own backoff (the
    consumer's per shard, the ingest's per entry), whose retries botocore's would multiply.
    ``session`` is a ``boto3.session.Session`` (a new one if None). ``fast_get_records=True`` (the
    consumer's) reads GetRecords answers with ``pistats.kinesis.get_records``; it needs a session of its
    own (``session`` None), as it is set on the session's botocore core.
    """
    import boto3
    from botocore.config import Config

    if fast_get_records:
        if session is not None:
            raise ValueError("fast_get_records needs a session of its own: leave session None")
        import botocore.session

        from pistats.kinesis.get_records import GetRecordsParserFactory

        core = botocore.session.get_session()
        core.register_component("response_parser_factory", GetRecordsParserFactory())
        session = boto3.session.Session(botocore_session=core)
    session = session or boto3.session.Session()
    credentials = {}
    if is_local_endpoint(endpoint_url) and session.get_credentials() is None:
        log.debug("no AWS credentials found; the emulator at %s gets dummy ones", endpoint_url)
        credentials = EMULATOR_CREDENTIALS
    return session.client(
        "kinesis",
        endpoint_url=endpoint_url,
        region_name=region or session.region_name or DEFAULT_REGION,
        config=Config(
            retries={"mode": "standard", "max_attempts": 3} if retries else {"total_max_attempts": 1},
            connect_timeout=connect_timeout_s, read_timeout=read_timeout_s,
            max_pool_connections=max_pool_connections,
        ),
        **credentials,
    )
