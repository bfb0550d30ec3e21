"""The FCM service account from a Secrets Manager secret (PISTATS_FCM_CREDENTIALS_SECRET_ARN), as the
Lambda gets it from deploy/template.yaml: moto's Secrets Manager in-process. Fetched once, kept in
memory, never in a repr, a message or a log line; every failure a one-line ConfigError naming the
variable; the file path (PISTATS_FCM_CREDENTIALS) working as before."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from types import SimpleNamespace

import boto3
import orjson
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from pistats.errors import ConfigError
from pistats.push.fcm import SECRET_VARIABLE, FcmClient, FcmConfig, SecretUnreadable, fetch_secret
from pistats.push.fcm_sync import SyncFcmSender
from pistats.push.welcome import PendingWelcomer, WelcomeConfig, WelcomeOutcome, welcomer_from_env
from pistats.registry.store import Written
from pistats.testing.fcm import FcmServer
from tests.support.clock import Clock

REGION = "eu-west-1"


@pytest.fixture(scope="module")
def service_account() -> dict:
    server = FcmServer(project_id="proj-secret")
    server.url = "http://fcm.test"
    return server.credentials()


@pytest.fixture
def secrets():
    """moto's Secrets Manager: (client, create(name, value) -> ARN)."""
    with mock_aws():
        client = boto3.client("secretsmanager", region_name=REGION)

        def create(name: str, value: str | bytes) -> str:
            key = "SecretBinary" if isinstance(value, bytes) else "SecretString"
            return client.create_secret(Name=name, **{key: value})["ARN"]

        yield client, create


class Counting:
    """A secretsmanager client counting its GetSecretValue calls."""

    def __init__(self, client):
        self._client, self.calls = client, 0

    def get_secret_value(self, **kwargs):
        self.calls += 1
        return self._client.get_secret_value(**kwargs)


def key_material(info: dict) -> str:
    return info["private_key"].splitlines()[5]  # a line of the key's base64 body


def test_the_service_account_comes_from_the_secret_in_memory(secrets, service_account):
    client, create = secrets
    arn = create("pistats/fcm", orjson.dumps(service_account).decode())
    config = FcmConfig.from_env({SECRET_VARIABLE: arn, "PISTATS_FCM_ENDPOINT": "https://fcm.test"})
    assert config.credentials_info()["project_id"] == "proj-secret"
    assert config.credentials_path == f"secret {arn}"
    assert key_material(service_account) not in repr(config)
    assert FcmClient(config).url == "https://fcm.test/v1/projects/proj-secret/messages:send"
    sender = SyncFcmSender(config)
    assert sender.project_id == "proj-secret"
    sender.close()


def test_the_default_client_is_made_for_the_arns_region(secrets, service_account):
    _, create = secrets
    arn = create("fcm", orjson.dumps(service_account).decode())
    assert orjson.loads(fetch_secret(arn))["client_email"] == service_account["client_email"]
    with pytest.raises(ConfigError, match=r"could not be read from Secrets Manager \(ResourceNotFoundException\)"):
        fetch_secret(arn.replace(f":{REGION}:", ":us-east-2:"))  # another region's Secrets Manager has none


def test_a_binary_secret_serves_too(secrets, service_account):
    _, create = secrets
    arn = create("fcm-binary", orjson.dumps(service_account))
    assert FcmConfig.from_env({SECRET_VARIABLE: arn}).credentials_info()["project_id"] == "proj-secret"


def problem(environ, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        FcmConfig.from_env(environ, **kwargs)
    return caught.value


def test_failures_name_the_variable_and_never_the_value(secrets, service_account, tmp_path):
    client, create = secrets
    missing = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:nothing-AbCdEf"
    error = problem({SECRET_VARIABLE: missing})
    assert (error.field, error.problem) == (SECRET_VARIABLE, "could not be read from Secrets Manager "
                                                             "(ResourceNotFoundException)")
    assert problem({SECRET_VARIABLE: "pistats/fcm"}).problem.startswith("must be a Secrets Manager secret ARN")

    not_json = create("not-json", "hunter2-" + key_material(service_account))
    error = problem({SECRET_VARIABLE: not_json})
    assert (error.field, error.problem) == (SECRET_VARIABLE, "is not JSON (the secret's value)")
    user = create("user-account", orjson.dumps({**service_account, "type": "authorized_user"}).decode())
    assert problem({SECRET_VARIABLE: user}).problem.startswith("is not a service-account JSON")
    broken = {**service_account, "private_key": service_account["private_key"][:200] + "garbage"}
    error = problem({SECRET_VARIABLE: create("broken-key", orjson.dumps(broken).decode())})
    assert error.problem == "holds a private_key that cannot be read (the secret's value)"
    assert key_material(service_account) not in str(error)

    path = tmp_path / "sa.json"
    path.write_bytes(orjson.dumps(service_account))
    arn = create("fcm", orjson.dumps(service_account).decode())
    error = problem({SECRET_VARIABLE: arn, "PISTATS_FCM_CREDENTIALS": str(path)})
    assert error.problem == "and PISTATS_FCM_CREDENTIALS are both set: set one"
    # A path given on the command line (--fcm-credentials) wins over the environment's secret.
    assert FcmConfig.from_env({SECRET_VARIABLE: arn}, credentials=str(path)).credentials_json is None
    error = problem({})
    assert error.field == "PISTATS_FCM_CREDENTIALS" and SECRET_VARIABLE in error.problem


class Refusing:
    def __init__(self, error):
        self.error = error

    def get_secret_value(self, **kwargs):
        raise self.error


@pytest.mark.parametrize("error, shown", [
    (ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "GetSecretValue"),
     "AccessDeniedException"),
    (EndpointConnectionError(endpoint_url="https://secretsmanager.eu-west-1.amazonaws.com"),
     "EndpointConnectionError"),
])
def test_aws_refusing_or_unreachable_is_one_line(error, shown):
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:fcm-AbCdEf"
    caught = problem({SECRET_VARIABLE: arn}, secrets_client=Refusing(error))
    assert caught.problem == f"could not be read from Secrets Manager ({shown})"


REGISTRY = SimpleNamespace(connections=None, redacted_url="registry")  # the Welcomer does not connect when built


def test_the_ingest_fetches_the_secret_once_at_its_start_and_logs_no_credential(secrets, service_account, caplog):
    client, create = secrets
    arn = create("fcm", orjson.dumps(service_account).decode())
    counting = Counting(client)
    caplog.set_level(logging.INFO)
    welcome = welcomer_from_env(REGISTRY, {SECRET_VARIABLE: arn, "PISTATS_FCM_ENDPOINT": "http://127.0.0.1:9"},
                                secrets_client=counting)
    assert welcome is not None and counting.calls == 1
    assert welcome._sender.project_id == "proj-secret"  # the sender built from the value in memory
    assert "welcome notifications on" in caplog.text
    welcome.close()

    missing = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:gone-AbCdEf"
    pending = welcomer_from_env(REGISTRY, {SECRET_VARIABLE: missing}, secrets_client=counting)
    assert isinstance(pending, PendingWelcomer) and not pending.ready
    assert ("welcome notifications off until the secret can be read (again in 60 s): "
            f"{SECRET_VARIABLE} could not be read from Secrets Manager (ResourceNotFoundException)") in caplog.text
    assert key_material(service_account) not in caplog.text and "PRIVATE KEY" not in caplog.text


class Flaky:
    """A secretsmanager client refusing its first ``failures`` GetSecretValue calls, then asking
    ``client``; counts its calls."""

    def __init__(self, client, failures: int, error=None):
        self._client, self._failures, self.calls = client, failures, 0
        self._error = error or ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}},
                                           "GetSecretValue")

    def get_secret_value(self, **kwargs):
        self.calls += 1
        if self.calls <= self._failures:
            raise self._error
        return self._client.get_secret_value(**kwargs)


NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def test_an_unreadable_secret_is_read_again_until_it_can_be_then_welcomes_start(secrets, service_account, caplog):
    client, create = secrets
    arn = create("fcm-flaky", orjson.dumps(service_account).decode())
    flaky, clock = Flaky(client, failures=2), Clock(1000.0)
    caplog.set_level(logging.INFO)
    welcome = welcomer_from_env(REGISTRY, {SECRET_VARIABLE: arn, "PISTATS_FCM_ENDPOINT": "http://127.0.0.1:9"},
                                secrets_client=flaky, clock=clock, secret_retry_s=60)
    assert isinstance(welcome, PendingWelcomer) and not welcome.ready and flaky.calls == 1
    assert "welcome notifications off until the secret can be read (again in 60 s)" in caplog.text
    # Before the interval: no call, no window (the write reports no welcome owed), nothing sent.
    clock.now += 59
    assert welcome.welcome_since(NOW) is None and flaky.calls == 1
    assert welcome.after_write("cl", Written(None)) == WelcomeOutcome()
    clock.now += 1
    assert welcome.welcome_since(NOW) is None and flaky.calls == 2  # refused again
    assert "welcome notifications still off (again in 60 s)" in caplog.text
    clock.now += 30
    assert welcome.welcome_since(NOW) is None and flaky.calls == 2
    clock.now += 30
    assert welcome.welcome_since(NOW) == WelcomeConfig().welcome_since(NOW) and welcome.ready and flaky.calls == 3
    assert "welcome notifications on" in caplog.text
    clock.now += 3600
    assert welcome.welcome_since(NOW) is not None and flaky.calls == 3  # read once, kept
    welcome.close()
    assert key_material(service_account) not in caplog.text and "PRIVATE KEY" not in caplog.text


def test_a_secret_readable_but_unusable_is_not_tried_again(secrets, caplog):
    client, create = secrets
    arn = create("fcm-unusable", "not a service account")
    flaky = Flaky(client, failures=1, error=EndpointConnectionError(endpoint_url="https://sm.test"))
    clock = Clock(1000.0)
    welcome = welcomer_from_env(REGISTRY, {SECRET_VARIABLE: arn}, secrets_client=flaky, clock=clock, secret_retry_s=5)
    assert isinstance(welcome, PendingWelcomer)
    clock.now += 5
    assert welcome.welcome_since(NOW) is None and flaky.calls == 2
    assert f"welcome notifications off: {SECRET_VARIABLE}" in caplog.text
    clock.now += 500
    assert welcome.welcome_since(NOW) is None and flaky.calls == 2 and not welcome.ready


def test_only_a_refused_or_unreachable_secret_is_unreadable():
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:fcm-AbCdEf"
    refused = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetSecretValue")
    with pytest.raises(SecretUnreadable):
        fetch_secret(arn, Refusing(refused))
    with pytest.raises(ConfigError) as caught:
        fetch_secret("arn:aws:secretsmanager:nowhere", Refusing(refused))
    assert not isinstance(caught.value, SecretUnreadable)
    assert welcomer_from_env(REGISTRY, {SECRET_VARIABLE: "arn:aws:secretsmanager:nowhere"}) is None
