"""The Kinesis client factory: an emulator on this machine works without AWS credentials; no
other endpoint ever gets made-up ones."""

import boto3
import pytest

from pistats.kinesis.client import is_local_endpoint, make_kinesis_client


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """A default chain that finds nothing: no variables, no files, no instance metadata."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def signing_key(client):
    credentials = client._request_signer._credentials
    return None if credentials is None else credentials.access_key


@pytest.mark.parametrize("url", ["http://127.0.0.1:4567", "http://localhost:4567", "https://LOCALHOST",
                                 "http://127.0.0.2:4567", "http://[::1]:4567", "http://kinesis.localhost:4567"])
def test_loopback_and_localhost_are_local(url):
    assert is_local_endpoint(url)


@pytest.mark.parametrize("url", [None, "", "https://kinesis.us-east-1.amazonaws.com", "http://10.0.0.5:4567",
                                 "http://localhost.example.com", "http://[::2]:1", "not a url"])
def test_anything_else_is_not(url):
    assert not is_local_endpoint(url)


def test_an_emulator_without_credentials_gets_dummy_ones(no_credentials):
    client = make_kinesis_client("http://127.0.0.1:4567")
    assert signing_key(client) == "test"
    assert client.meta.region_name == "us-east-1"


def test_aws_without_credentials_gets_none(no_credentials):
    assert signing_key(make_kinesis_client(None, "eu-west-1")) is None
    assert signing_key(make_kinesis_client("https://kinesis.eu-west-1.amazonaws.com", "eu-west-1")) is None


def test_credentials_from_the_chain_win_even_for_an_emulator(no_credentials, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-chain")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert signing_key(make_kinesis_client("http://localhost:4567")) == "from-the-chain"


def test_retries_and_timeouts(no_credentials):
    own = make_kinesis_client("http://127.0.0.1:4567", "us-east-1", retries=False, connect_timeout_s=2.0,
                         read_timeout_s=5.0, max_pool_connections=64, session=boto3.session.Session())
    assert own.meta.config.retries["total_max_attempts"] == 1
    assert (own.meta.config.connect_timeout, own.meta.config.read_timeout) == (2.0, 5.0)
    assert own.meta.config.max_pool_connections == 64
    assert make_kinesis_client("http://127.0.0.1:4567").meta.config.retries == {"mode": "standard", "total_max_attempts": 4}
