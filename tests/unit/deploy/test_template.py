"""deploy/template.yaml: cfn-lint finds nothing, the function runs the packaged handler on the
runtime the zip is built for, its role may only PutRecords on its own stream (and write its own
logs, and read the FCM credentials' secret when one is given), and no secret is in the template
or in a parameter's echo."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.decode import decode

from pistats.deploy import lambda_package as lp
from pistats.ingest.config import _ENV_NAMES as INGEST_VARIABLES
from pistats.push import fcm
from pistats.registry import config as registry_config

TEMPLATE = Path(__file__).resolve().parents[3] / "deploy" / lp.TEMPLATE_NAME
CFN_LINT = Path(sys.executable).parent / "cfn-lint"


@pytest.fixture(scope="module")
def template() -> dict:
    decoded, problems = decode(str(TEMPLATE))
    assert problems == []
    return json.loads(json.dumps(decoded))  # plain dicts and lists


def resources(template, kind):
    return {name: r["Properties"] for name, r in template["Resources"].items() if r["Type"] == kind}


def test_cfn_lint_finds_nothing():
    """Errors, warnings and informational findings alike (exit code 0 and no output)."""
    result = subprocess.run([str(CFN_LINT), str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_cfn_lint_is_pinned_by_the_lock_and_the_test_extra():
    root = TEMPLATE.parents[1]
    assert lp.read_lock(root / "requirements.lock")["cfn-lint"] == "1.58.0"
    assert '"cfn-lint==1.58.0"' in (root / "pyproject.toml").read_text()


def test_the_function_runs_the_packaged_handler_on_the_zips_runtime(template):
    (name, function), = resources(template, "AWS::Serverless::Function").items()
    assert (function["CodeUri"], function["Handler"], function["Runtime"], function["Architectures"]) == (
        lp.ZIP_NAME, lp.HANDLER, lp.RUNTIME, ["x86_64"])
    assert lp.HANDLER.rsplit(".", 1)[0] in lp.HANDLER_MODULES
    assert lp.RUNTIME == f"python{lp.PYTHON_VERSION}"
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"], e["Properties"]["PayloadFormatVersion"])
              for e in function["Events"].values() if e["Type"] == "HttpApi"}
    assert routes == {("POST", "/v1/events", "2.0"), ("OPTIONS", "/v1/events", "2.0")}


def test_every_environment_variable_is_one_the_ingest_reads(template):
    (function,) = resources(template, "AWS::Serverless::Function").values()
    variables = function["Environment"]["Variables"]
    read = {*INGEST_VARIABLES.values(), registry_config.URL_VARIABLE, registry_config.TIMEOUT_VARIABLE,
            "PGPASSWORD", fcm.SECRET_VARIABLE}
    assert set(variables) <= read
    assert variables["PISTATS_INGEST_STREAM"] == {"Ref": "Stream"}


def statements(template):
    """(condition or None, statement) of every policy statement of the roles; a policy under
    ``Fn::If`` must have nothing in its else branch."""
    for role in resources(template, "AWS::IAM::Role").values():
        for policy in role.get("Policies", []):
            condition = None
            if "Fn::If" in policy:
                condition, policy, otherwise = policy["Fn::If"]
                assert otherwise == {"Ref": "AWS::NoValue"}
            for statement in policy["PolicyDocument"]["Statement"]:
                yield condition, statement


def test_the_role_may_only_put_records_on_its_stream_write_its_logs_and_read_the_fcm_secret(template):
    granted = [(condition, s["Effect"], s["Action"] if isinstance(s["Action"], list) else [s["Action"]],
                s["Resource"]) for condition, s in statements(template)]
    assert granted == [
        (None, "Allow", ["kinesis:PutRecords"], {"Fn::GetAtt": ["Stream", "Arn"]}),
        (None, "Allow", ["logs:CreateLogStream", "logs:PutLogEvents"], {"Fn::GetAtt": ["IngestLogGroup", "Arn"]}),
        # Only when a secret is given, and that secret only: no wildcard, no other action.
        ("HasFcmCredentials", "Allow", ["secretsmanager:GetSecretValue"], {"Ref": "FcmCredentialsSecretArn"}),
    ]
    assert template["Conditions"]["HasFcmCredentials"] == {"Fn::Not": [{"Fn::Equals": [
        {"Ref": "FcmCredentialsSecretArn"}, ""]}]}
    (role,) = resources(template, "AWS::IAM::Role").values()
    # The only managed policy is the VPC one, and only in a VPC.
    assert role["ManagedPolicyArns"]["Fn::If"][0] == "InVpc"
    assert role["ManagedPolicyArns"]["Fn::If"][1] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"}]
    (function,) = resources(template, "AWS::Serverless::Function").values()
    assert function["Role"] == {"Fn::GetAtt": ["IngestRole", "Arn"]} and "Policies" not in function


def test_no_secret_is_inline_or_echoed(template):
    parameters = template["Parameters"]
    assert parameters["RedisUrl"]["NoEcho"] is True and "Default" not in parameters["RedisUrl"]
    assert all(not str(p.get("Default", "")).count("@") for p in parameters.values())
    (function,) = resources(template, "AWS::Serverless::Function").values()
    password = function["Environment"]["Variables"]["PGPASSWORD"]["Fn::If"]
    assert password[0] == "HasRegistryPassword"
    assert password[1] == {"Fn::Sub": "{{resolve:secretsmanager:${RegistryPasswordSecret}:SecretString:password}}"}
    assert re.findall(r"://[\w.%-]*:[\w.%~-]+@", TEMPLATE.read_text()) == []  # no URL carries a password
    # The FCM key stays in Secrets Manager: the function gets the secret's ARN, never its value.
    fcm_variable = function["Environment"]["Variables"][fcm.SECRET_VARIABLE]["Fn::If"]
    assert fcm_variable == ["HasFcmCredentials", {"Ref": "FcmCredentialsSecretArn"}, {"Ref": "AWS::NoValue"}]
    assert "PISTATS_FCM_CREDENTIALS" not in function["Environment"]["Variables"]
    assert "resolve:secretsmanager:${FcmCredentialsSecretArn}" not in TEMPLATE.read_text()


@pytest.mark.parametrize("arn, allowed", [
    ("", True),
    ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:pistats/fcm-AbC123", True),
    ("arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:fcm-x", True),
    ("pistats/fcm", False),  # a name: the policy needs the ARN
    ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:*", False),  # no wildcard grant
    ("arn:aws:s3:::bucket/key", False),
])
def test_the_fcm_secret_parameter_takes_one_secrets_arn(template, arn, allowed):
    pattern = template["Parameters"]["FcmCredentialsSecretArn"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, arn)) is allowed
    if arn:  # the handler's own check agrees
        assert bool(fcm.SECRET_ARN.fullmatch(arn)) is allowed


@pytest.mark.parametrize("url", ["postgresql://pistats:hunter2@db:5432/pistats", "postgres://:x@db/pistats"])
def test_a_registry_url_with_a_password_is_refused_by_its_pattern(template, url):
    assert not re.fullmatch(template["Parameters"]["RegistryUrl"]["AllowedPattern"], url)
    assert re.fullmatch(template["Parameters"]["RegistryUrl"]["AllowedPattern"], "postgresql://pistats@proxy:5432/pistats")
    assert re.fullmatch(template["Parameters"]["RegistryUrl"]["AllowedPattern"], "")
