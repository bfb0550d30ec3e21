"""The Lambda zip: what goes in (the handler's measured import closure, the lock's pins), what
stays out (the runtime's boto3, caches, wheels for other platforms), and the same bytes twice."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import pistats
from pistats.cli.main import main as pistats_main
from pistats.deploy import lambda_package as lp

ROOT = Path(__file__).resolve().parents[3]
PACKAGE_DIR = Path(pistats.__file__).resolve().parent

# Imports the handler and builds its service as a first invocation would (no connection is made:
# boto3, Redis, the registry and FCM connect on first use), then lists what it imported.
MEASURE = """
import importlib.metadata, json, sys
before = set(sys.modules)
from pistats.ingest import lambda_handler
lambda_handler.app.service()
loaded = set(sys.modules) - before
tops = {name.split(".")[0] for name in loaded}
owners = importlib.metadata.packages_distributions()
print(json.dumps({"pistats": sorted(m for m in loaded if m == "pistats" or m.startswith("pistats.")),
                  "distributions": sorted({d for top in tops - {"pistats"} for d in owners.get(top, [])})}))
"""
FAKE_ENV = {"PISTATS_INGEST_STREAM": "events", "PISTATS_REDIS_URL": "redis://127.0.0.1:1/0",
            "PISTATS_REGISTRY_URL": "postgresql://pistats@127.0.0.1:1/pistats", "AWS_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "PATH": "/usr/bin:/bin"}


def measure(env: dict) -> dict:
    result = subprocess.run([sys.executable, "-c", MEASURE], env=env, cwd="/", capture_output=True,
                            text=True, timeout=120, check=True)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def measured():
    """Without FCM: no welcome notifications."""
    return measure(FAKE_ENV)


@pytest.fixture(scope="module")
def measured_with_welcome(tmp_path_factory):
    """With FCM configured (a service-account JSON of a local FCM never started): the welcome's
    sender is built at the first invocation."""
    from pistats.testing.fcm import FcmServer

    credentials = tmp_path_factory.mktemp("fcm") / "service-account.json"
    FcmServer().write_credentials(str(credentials))
    return measure({**FAKE_ENV, "PISTATS_FCM_CREDENTIALS": str(credentials),
                    "PISTATS_FCM_ENDPOINT": "http://127.0.0.1:1"})


def test_the_modules_shipped_are_the_handlers_import_closure(measured_with_welcome):
    assert sorted(lp.HANDLER_MODULES) == measured_with_welcome["pistats"], (
        "update HANDLER_MODULES in pistats/deploy/lambda_package.py to what the handler imports")


def test_without_fcm_the_handler_imports_nothing_only_the_welcome_needs(measured):
    assert measured["pistats"] == sorted(set(lp.HANDLER_MODULES) - set(lp.WELCOME_MODULES))
    imported = {lp.normalise(name) for name in measured["distributions"]}
    assert imported & {"httpx", "httpcore", "h2", "google-auth", "anyio"} == set()


def test_the_distributions_shipped_are_what_the_handler_imports_less_the_runtimes(measured, measured_with_welcome):
    provided = {lp.normalise(name) for name in lp.RUNTIME_PROVIDED}
    optional = {lp.normalise(name) for name in lp.OPTIONAL_IMPORTS}
    shipped = {lp.normalise(name) for name in lp.DISTRIBUTIONS}
    imported = {lp.normalise(name) for name in measured_with_welcome["distributions"]}
    assert imported - provided - optional == shipped
    assert shipped & (provided | optional) == set()
    without_welcome = {lp.normalise(name) for name in measured["distributions"]} - provided - optional
    assert shipped - without_welcome <= {lp.normalise(name) for name in lp.WELCOME_DISTRIBUTIONS}


def test_every_distribution_is_pinned_by_the_lock():
    requirements = lp.pinned_requirements(lp.read_lock(ROOT / "requirements.lock"))
    assert "orjson==3.13.0" in requirements and len(requirements) == len(lp.DISTRIBUTIONS)


def test_the_lock_is_read_by_normalised_name(tmp_path):
    lock = tmp_path / "lock"
    lock.write_text("# pins\ntyping_extensions==4.16.0\nPsycopg-Binary == 3.3.9  # libpq inside\n-e .\n")
    assert lp.read_lock(lock) == {"typing-extensions": "4.16.0", "psycopg-binary": "3.3.9"}
    with pytest.raises(lp.PackageError, match="requirements.lock has no pin for orjson, redis"):
        lp.pinned_requirements(lp.read_lock(lock), ["orjson", "typing_extensions", "redis"])


def fake_wheel(site: Path, name: str, version: str, tag: str = "py3-none-any") -> None:
    """What pip --target leaves for one wheel: the module, its dist-info, and a cache."""
    module = name.replace("-", "_")
    (site / module / "__pycache__").mkdir(parents=True)
    (site / module / "__init__.py").write_text(f"VERSION = {version!r}\n")
    (site / module / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"cache")
    info = site / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "WHEEL").write_text(f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n")
    (info / "METADATA").write_text(f"Name: {name}\nVersion: {version}\n")


def installer_of(tags: dict[str, str] | None = None, extra: tuple[str, ...] = ()):
    """A stand-in for pip: installs fake wheels of the requirements (and of ``extra``)."""
    calls = []

    def install(requirements, target):
        calls.append(list(requirements))
        for requirement in [*requirements, *(f"{name}==1.0" for name in extra)]:
            name, version = requirement.split("==")
            fake_wheel(target, name, version, (tags or {}).get(name, "py3-none-any"))
        (target / "bin").mkdir(exist_ok=True)
        (target / "bin" / "tool").write_text("#!/bin/sh\n")

    install.calls = calls
    return install


def build(out, **options):
    return lp.build(out, lock=ROOT / "requirements.lock", template=ROOT / "deploy" / lp.TEMPLATE_NAME,
                    package_dir=PACKAGE_DIR, **options)


def test_the_zip_holds_the_handler_and_the_wheels_without_caches_or_scripts(tmp_path):
    installer = installer_of()
    built = build(tmp_path / "out", installer=installer)
    assert installer.calls == [lp.pinned_requirements(lp.read_lock(ROOT / "requirements.lock"))]
    names = zipfile.ZipFile(built.zip_path).namelist()
    assert names == sorted(names)
    assert "pistats/ingest/lambda_handler.py" in names and "pistats/__init__.py" in names
    assert "pistats/cli/main.py" not in names and "pistats/store/__init__.py" not in names
    assert sum(name.startswith("pistats/") for name in names) == len(lp.HANDLER_MODULES)
    assert "orjson/__init__.py" in names and "orjson-3.13.0.dist-info/WHEEL" in names
    assert [name for name in names if "__pycache__" in name or name.startswith("bin/")] == []
    pins = lp.read_lock(ROOT / "requirements.lock")
    assert built.distributions == {lp.normalise(name): pins[lp.normalise(name)] for name in lp.DISTRIBUTIONS}
    assert built.distributions["orjson"] == "3.13.0" and built.distributions["httpx"] == "0.28.1"
    assert built.files == len(names) and built.size_bytes == built.zip_path.stat().st_size
    assert built.template_path.read_bytes() == (ROOT / "deploy" / lp.TEMPLATE_NAME).read_bytes()
    assert not list((tmp_path / "out").glob("*.partial"))


def test_the_same_inputs_give_the_same_bytes(tmp_path):
    first = build(tmp_path / "a", installer=installer_of())
    second = build(tmp_path / "b", installer=installer_of())
    assert first.zip_path.read_bytes() == second.zip_path.read_bytes()
    info = zipfile.ZipFile(first.zip_path).getinfo("pistats/ingest/lambda_handler.py")
    assert info.date_time == (1980, 1, 1, 0, 0, 0) and (info.external_attr >> 16) & 0o777 == 0o644


def test_a_wheel_for_another_platform_is_refused(tmp_path):
    installer = installer_of({"orjson": "cp311-cp311-macosx_11_0_arm64"})
    with pytest.raises(lp.PackageError, match="orjson 3.13.0 is a wheel for cp311-cp311-macosx_11_0_arm64, "
                                              "not for CPython 3.11 on manylinux2014_x86_64"):
        build(tmp_path, installer=installer)
    assert not (tmp_path / lp.ZIP_NAME).exists()


@pytest.mark.parametrize("tag", ["cp311-cp311-manylinux_2_17_x86_64", "cp38-abi3-manylinux2014_x86_64",
                                 "py3-none-any"])
def test_wheels_the_runtime_loads_are_taken(tmp_path, tag):
    fake_wheel(tmp_path, "orjson", "3.13.0", tag)
    assert lp.check_installed(tmp_path, ["orjson"]) == {"orjson": "3.13.0"}


@pytest.mark.parametrize("tag", ["cp312-cp312-manylinux_2_17_x86_64", "cp311-cp311-manylinux_2_28_x86_64",
                                 "cp311-cp311-manylinux_2_17_aarch64", "cp311-cp311-musllinux_1_2_x86_64"])
def test_wheels_the_runtime_may_not_load_are_refused(tmp_path, tag):
    fake_wheel(tmp_path, "orjson", "3.13.0", tag)
    with pytest.raises(lp.PackageError, match=f"is a wheel for {tag}"):
        lp.check_installed(tmp_path, ["orjson"])


def test_what_the_runtime_provides_never_goes_in(tmp_path):
    with pytest.raises(lp.PackageError, match="the Lambda runtime provides boto3, botocore: it must not be in the zip"):
        build(tmp_path, installer=installer_of(extra=("boto3", "botocore")))


def test_a_template_deploying_another_code_uri_is_refused(tmp_path):
    template = tmp_path / "template.yaml"
    template.write_text((ROOT / "deploy" / lp.TEMPLATE_NAME).read_text().replace(lp.ZIP_NAME, "other.zip"))
    with pytest.raises(lp.PackageError, match=f"does not deploy CodeUri: {lp.ZIP_NAME}"):
        lp.build(tmp_path / "out", template=template, lock=ROOT / "requirements.lock", installer=installer_of())


def test_the_command_names_a_missing_pin_in_one_line(tmp_path, capsys):
    lock = tmp_path / "requirements.lock"
    lock.write_text("orjson==3.13.0\n")
    code = pistats_main(["lambda", "package", "--out", str(tmp_path / "out"), "--lock", str(lock)])
    missing = ", ".join(name for name in lp.DISTRIBUTIONS if name != "orjson")
    assert (code, capsys.readouterr().err) == (1, f"pistats lambda: requirements.lock has no pin for {missing}\n")


def test_the_command_names_a_missing_lock_in_one_line(tmp_path, capsys):
    code = pistats_main(["lambda", "package", "--out", str(tmp_path), "--lock", str(tmp_path / "nope.lock")])
    assert code == 1
    assert capsys.readouterr().err == (f"pistats lambda: cannot read the lock file {tmp_path / 'nope.lock'}: "
                                       "No such file or directory\n")
