"""The deployment zip, unpacked into an empty folder, serves API Gateway v2 events from a fresh
interpreter that sees only the zip, boto3 as the runtime provides it and the standard library:
against kinesis-local, Redis and PostgreSQL, as the deployed function would."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import subprocess
import sys
import sysconfig
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from pistats.deploy.lambda_package import (
    DISTRIBUTIONS,
    HANDLER,
    HANDLER_MODULES,
    RUNTIME_PROVIDED,
    ZIP_NAME,
    check_installed,
    normalise,
)
from tests.integration.ingest.conftest import read_stream
from tests.integration.registry.conftest import delete_client, read_rows

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "unit" / "ingest" / "events"
RUNNER = (Path(__file__).parent / "runtime_invoke.py").read_text()
T0 = datetime(2026, 11, 26, 11, 0, tzinfo=timezone.utc)
# What a deployed function may not exceed: 50 MB zipped (direct upload), 250 MB unzipped.
MAX_ZIP_BYTES, MAX_UNZIPPED_BYTES = 50_000_000, 250_000_000


def ev(n, kind, user, token=None, second=0):
    event = {"event_id": f"e-{n}", "type": kind, "property_id": "site-1", "user_id": user,
             "timestamp": (T0 + timedelta(seconds=second)).isoformat().replace("+00:00", "Z"),
             "context": {"sdk": {"name": "pistats-js", "version": "2.5.0"}, "locale": "fr-FR"}}
    if token:
        event["push_token"] = token
    return event


def apigw_v2(key: str | None, body: dict | None, method: str = "POST", path: str = "/v1/events") -> dict:
    """An HTTP API (payload 2.0) event, from the recorded one: body base64-encoded as API Gateway
    sends binary media."""
    event = copy.deepcopy(json.loads((EVENTS / "apigw_v2.json").read_text()))
    event["requestContext"]["http"].update(method=method, path=path)
    event.update(rawPath=path, routeKey=f"{method} {path}")
    event["body"] = base64.b64encode(json.dumps(body).encode()).decode() if body is not None else None
    event["isBase64Encoded"] = body is not None
    del event["headers"]["content-length"]
    if key is None:
        del event["headers"]["x-pistats-key"]
    else:
        event["headers"]["x-pistats-key"] = key
    return event


def invoke(task_dir: Path, runtime_dir: Path, environment: dict, events: list[dict]) -> tuple[list[dict], list[str]]:
    """The handler's results for ``events``, one container (one process), and its loaded files."""
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", RUNNER, str(task_dir), str(runtime_dir), HANDLER],
        input="".join(json.dumps(event) + "\n" for event in events), capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
             "AWS_SECRET_ACCESS_KEY": "testing", **environment},
        cwd=task_dir, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert "Traceback" not in result.stderr, result.stderr
    return lines[:-1], lines[-1]["loaded"]


def outside(loaded: list[str], task_dir: Path, runtime_dir: Path) -> list[str]:
    """The loaded files from neither the zip, the runtime's packages nor the standard library
    (its site-packages excluded)."""
    stdlib = {sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib")}
    return [path for path in loaded
            if not path.startswith((f"{task_dir}/", f"{runtime_dir}/"))
            and not (path.startswith(tuple(f"{root}/" for root in stdlib)) and "/site-packages/" not in path)]


@pytest.fixture
def environment(ingest_stream, kinesis_endpoint, redis_url, key_prefix) -> dict:
    """The function's environment variables, as deploy/template.yaml sets them, on the local services."""
    return {"PISTATS_INGEST_STREAM": ingest_stream, "PISTATS_INGEST_ENDPOINT_URL": kinesis_endpoint,
            "PISTATS_REDIS_URL": redis_url, "PISTATS_INGEST_KEY_PREFIX": key_prefix,
            "PISTATS_INGEST_TRUSTED_HOPS": "0"}


@pytest.fixture
def client_key(key_store, unique_name, registry_url):
    """A write key of this test's own client; its registry rows are deleted afterwards."""
    key, _ = key_store.create(unique_name)
    yield key
    delete_client(registry_url, unique_name)


def test_the_zip_carries_no_runtime_package_and_only_wheels_for_the_runtime(lambda_package, task_dir):
    with zipfile.ZipFile(lambda_package / ZIP_NAME) as archive:
        names = archive.namelist()
        unzipped = sum(info.file_size for info in archive.infolist())
    assert (lambda_package / ZIP_NAME).stat().st_size < MAX_ZIP_BYTES and unzipped < MAX_UNZIPPED_BYTES
    tops = {name.split("/")[0] for name in names}
    for provided in RUNTIME_PROVIDED:
        assert not {top for top in tops if normalise(top).startswith(normalise(provided))}, provided
    assert "boto3" not in tops and "botocore" not in tops
    assert sorted(name for name in names if name.startswith("pistats/")) == sorted(
        "/".join(module.split(".")) + ("/__init__.py" if (task_dir / Path(*module.split("."))).is_dir() else ".py")
        for module in HANDLER_MODULES)
    assert set(check_installed(task_dir, DISTRIBUTIONS)) == {normalise(name) for name in DISTRIBUTIONS}
    assert [name for name in names if "__pycache__" in name or name.endswith(".pyc")] == []
    assert (lambda_package / "template.yaml").is_file()


def test_the_unpacked_handler_puts_events_and_writes_the_registry(task_dir, runtime_dir, environment, registry_url,
                                                                  client_key, kinesis_client, ingest_stream,
                                                                  unique_name):
    user, token = f"{unique_name}-u", f"{unique_name}-t"
    batch = {"batch": [ev("1", "register", user), ev("2", "subscribe", user, token, 1),
                       ev("3", "page_view", user, second=2)]}
    results, loaded = invoke(task_dir, runtime_dir, {**environment, "PISTATS_REGISTRY_URL": registry_url}, [
        apigw_v2(client_key, batch),
        apigw_v2(client_key, batch),  # a retry: nothing put twice
        apigw_v2("pk_nobody", batch),
        apigw_v2(None, None, method="OPTIONS"),
        apigw_v2(client_key, None, method="GET"),
    ])
    answers = [(r["statusCode"], json.loads(r["body"]) if r["body"] else None) for r in results]
    assert answers[0][0] == 200 and answers[0][1]["accepted"] == 3, answers[0]
    assert answers[1][0] == 200, answers[1]
    assert [status for status, _ in answers[2:]] == [401, 204, 405]
    assert results[3]["headers"]["Access-Control-Allow-Methods"] == "POST, OPTIONS"

    records = read_stream(kinesis_client, ingest_stream)
    assert sorted(record["event"]["event_id"] for _, record in records) == ["e-1", "e-2", "e-3"]
    with psycopg.connect(registry_url) as conn:
        subscribers, subscriptions = read_rows(conn, unique_name)
    assert set(subscribers) == {("site-1", user)}
    assert subscriptions[("site-1", token)]["status"] == "active"

    assert outside(loaded, task_dir, runtime_dir) == []
    assert all(path.startswith(f"{task_dir}/") for path in loaded if "/pistats/" in path)
    compiled = {Path(path).relative_to(task_dir).parts[0] for path in loaded
                if path.startswith(f"{task_dir}/") and path.endswith(".so")}
    assert compiled == {"orjson", "psycopg_binary"}  # the manylinux wheels' extensions, loaded here


def test_without_a_registry_the_unpacked_handler_puts_to_kinesis_only(task_dir, runtime_dir, environment, key_store,
                                                                      kinesis_client, ingest_stream):
    key, _ = key_store.create("acme")
    results, loaded = invoke(task_dir, runtime_dir, environment,
                             [apigw_v2(key, {"batch": [ev("9", "register", "u-9")]})])
    assert results[0]["statusCode"] == 200, results[0]
    assert [record["event"]["event_id"] for _, record in read_stream(kinesis_client, ingest_stream)] == ["e-9"]
    assert not [path for path in loaded if "/psycopg" in path]
    assert outside(loaded, task_dir, runtime_dir) == []


@pytest.mark.parametrize("credentials", ["secret", "file"])
def test_the_unpacked_handler_sends_a_welcome_through_fcm(task_dir, runtime_dir, environment, registry_url, client_key,
                                                          unique_name, tmp_path, request, credentials):
    """FCM configured: the zip carries httpx, h2, google-auth and cryptography, and a subscribe
    that activates a token sends the property's welcome from the unpacked handler. ``secret``:
    the service account from a Secrets Manager secret (moto's server), as deploy/template.yaml
    configures the function (only the ARN in its environment); ``file``: from a file's path."""
    import boto3

    from pistats.push.ledger import Ledger
    from pistats.registry.config import RegistryConfig
    from pistats.testing.fcm import LocalFcm

    ledger = Ledger.from_config(RegistryConfig(registry_url))
    try:
        welcome = ledger.set_welcome(unique_name, "site-1", "Hi", "Welcome", None, datetime.now(timezone.utc))
        with LocalFcm() as fcm:
            path = fcm.write_credentials(tmp_path / "service-account.json")
            if credentials == "file":
                fcm_environment = {"PISTATS_FCM_CREDENTIALS": path}
            else:
                moto = request.getfixturevalue("moto_endpoint")
                secrets = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto)
                arn = secrets.create_secret(Name=f"{unique_name}/fcm", SecretString=open(path).read())["ARN"]
                fcm_environment = {"PISTATS_FCM_CREDENTIALS_SECRET_ARN": arn, "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto}
            token = f"{unique_name}-welcome-token"
            results, loaded = invoke(task_dir, runtime_dir, {
                **environment, "PISTATS_REGISTRY_URL": registry_url, "PISTATS_FCM_ENDPOINT": fcm.url,
                **fcm_environment,
            }, [apigw_v2(client_key, {"batch": [ev("w1", "subscribe", f"{unique_name}-u", token, 1)]})])
            calls = fcm.calls()
        assert results[0]["statusCode"] == 200, results[0]
        assert [(c["token_sha256"], c["status"]) for c in calls] == [
            (hashlib.sha256(token.encode()).hexdigest(), 200)]
        assert ledger.counts(welcome.campaign_id)["sent"] == 1
    finally:
        with psycopg.connect(registry_url, autocommit=True) as conn:
            conn.execute("DELETE FROM property_settings WHERE client_id = %s", (unique_name,))
            conn.execute("DELETE FROM campaign_sends WHERE campaign_id IN "
                         "(SELECT campaign_id FROM campaigns WHERE client_id = %s)", (unique_name,))
            conn.execute("DELETE FROM campaigns WHERE client_id = %s", (unique_name,))
        ledger.close()
    assert outside(loaded, task_dir, runtime_dir) == []
    assert {"httpx", "h11", "google", "cryptography"} <= {Path(path).relative_to(task_dir).parts[0]
                                                           for path in loaded if path.startswith(f"{task_dir}/")}
