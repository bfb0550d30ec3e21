"""The ingest as an AWS Lambda function: the deployment zip and the SAM template beside it.

:func:`build` writes ``OUT/pistats-ingest.zip`` and ``OUT/template.yaml``:

- The zip holds the handler's import closure within pistats (:data:`HANDLER_MODULES`; a unit
  test checks it against the modules a fresh interpreter imports to build the handler's
  service) and the distributions those modules import (:data:`DISTRIBUTIONS`), at the versions
  requirements.lock pins, installed by pip as wheels built for the Lambda runtime
  (:data:`PLATFORM`, CPython :data:`PYTHON_VERSION`): nothing is compiled on this machine, and a
  wheel with any other platform tag is refused.
- It leaves out what the runtime provides (:data:`RUNTIME_PROVIDED`: boto3 and its
  dependencies), ``__pycache__`` folders and pip's ``bin/``.
- Entries are sorted, with fixed times and modes: the same inputs give the same bytes, so the
  same CodeSha256 and no needless update of the function.

The template is the checkout's ``deploy/template.yaml``, copied as is: its ``CodeUri`` names the
zip beside it. Building needs the checkout (requirements.lock and the template), not AWS.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pistats.errors import PistatsError

ZIP_NAME = "pistats-ingest.zip"
TEMPLATE_NAME = "template.yaml"
HANDLER = "pistats.ingest.lambda_handler.apigw_v2_handler"
RUNTIME = "python3.11"  # the project's Python (pyproject: >=3.11,<3.12)
PYTHON_VERSION = "3.11"
PLATFORM = "manylinux2014_x86_64"  # glibc 2.17: loads on the runtime's Amazon Linux 2023 (glibc 2.34)

# What the handler imports from pistats, building its service included (service_from_env).
HANDLER_MODULES = (
    "pistats",
    "pistats.contract",
    "pistats.contract.codec",
    "pistats.contract.fast",
    "pistats.contract.schema",
    "pistats.contract.timestamps",
    "pistats.contract.validation",
    "pistats.errors",
    "pistats.ingest",
    "pistats.ingest.api",
    "pistats.ingest.body",
    "pistats.ingest.config",
    "pistats.ingest.keys",
    "pistats.ingest.lambda_handler",
    "pistats.ingest.marks",
    "pistats.ingest.putter",
    "pistats.ingest.service",
    "pistats.kinesis",
    "pistats.kinesis.client",
    "pistats.push",
    "pistats.push.fcm",
    "pistats.push.fcm_sync",
    "pistats.push.ledger",
    "pistats.push.message",
    "pistats.push.transport",
    "pistats.push.welcome",
    "pistats.redact",
    "pistats.redisconn",
    "pistats.registry",
    "pistats.registry.arrays",
    "pistats.registry.changes",
    "pistats.registry.config",
    "pistats.registry.connections",
    "pistats.registry.errors",
    "pistats.registry.migrations",
    "pistats.registry.rules",
    "pistats.registry.store",
)

# Of those, what only welcome notifications import, when FCM is configured (PISTATS_FCM_CREDENTIALS):
# a container without FCM imports none of them, nor httpx and google-auth.
WELCOME_MODULES = ("pistats.push.fcm", "pistats.push.fcm_sync", "pistats.push.transport")

# The distributions those modules import, by their requirements.lock names. psycopg-binary is
# psycopg's compiled implementation with libpq inside (no libpq on the runtime); redis is used
# without hiredis (not in the lock). The welcome's FCM sender: httpx on httpcore (h11 for
# HTTP/1.1, h2/hpack/hyperframe for FCM's HTTP/2, idna, certifi's CA bundle), google-auth signing
# the service account's grant with cryptography (and its cffi backend).
DISTRIBUTIONS = ("certifi", "cffi", "cryptography", "google-auth", "h11", "h2", "hpack", "httpcore", "httpx",
                 "hyperframe", "idna", "orjson", "psycopg", "psycopg-binary", "redis", "typing-extensions")
WELCOME_DISTRIBUTIONS = ("certifi", "cffi", "cryptography", "google-auth", "h11", "h2", "hpack", "httpcore", "httpx",
                         "hyperframe", "idna")

# Imported by the handler, provided by the Lambda Python runtime: never in the zip.
RUNTIME_PROVIDED = ("boto3", "botocore", "jmespath", "s3transfer", "urllib3", "python-dateutil", "six")

# Imported when present, not needed: left out.
OPTIONAL_IMPORTS = {
    "anyio": "httpcore imports it for async connections; the welcome's sender is sync",
    "bcrypt": "cryptography imports it for encrypted SSH keys",
    "click": "httpx imports it for its command line",
    "Pygments": "httpx imports it for its command line",
    "protobuf": "shares the google namespace package with google-auth, which is what is imported",
    "zstandard": "httpx imports it to decode zstd responses; FCM's are not (the topology's micro-batches use it)",
}

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold
_CPYTHON = "cp" + PYTHON_VERSION.replace(".", "")
# Pure wheels, or CPython wheels for x86_64 Linux at glibc 2.17 or older.
_COMPATIBLE_TAG = re.compile(
    rf"^(py3|py2\.py3|cp3\d*)-none-any$"
    rf"|^({_CPYTHON}-{_CPYTHON}|cp3\d+-abi3)-(manylinux1|manylinux2010|manylinux2014|manylinux_2_([5-9]|1[0-7]))_x86_64$"
)


class PackageError(PistatsError):
    """The package cannot be built as pinned (missing pin, wheel, template): one line."""


@dataclass(frozen=True)
class LambdaPackage:
    """What :func:`build` wrote."""

    zip_path: Path
    template_path: Path
    size_bytes: int
    files: int
    distributions: dict[str, str]

    def summary(self) -> str:
        shipped = ", ".join(f"{name} {version}" for name, version in self.distributions.items())
        return (f"{self.zip_path} ({self.size_bytes / 1e6:.1f} MB, {self.files} files: "
                f"{len(HANDLER_MODULES)} pistats modules, {shipped}) and {self.template_path}")


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """``name -> version`` of every ``name==version`` line of requirements.lock."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise PackageError(f"cannot read the lock file {path}: {error.strerror or error}") from None
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        name, sep, version = line.partition("==")
        if sep:
            pins[normalise(name.split("[", 1)[0].strip())] = version.strip()
    return pins


def pinned_requirements(pins: dict[str, str], names: Iterable[str] = DISTRIBUTIONS) -> list[str]:
    """``name==version`` for each of ``names``; PackageError for one the lock does not pin."""
    missing = [name for name in names if normalise(name) not in pins]
    if missing:
        raise PackageError(f"requirements.lock has no pin for {', '.join(missing)}")
    return [f"{name}=={pins[normalise(name)]}" for name in names]


Installer = Callable[[Sequence[str], Path], None]


def pip_installer(python: str = sys.executable) -> Installer:
    """Installs pinned requirements into a folder with pip, as wheels for the Lambda runtime only
    (``--platform``, ``--only-binary=:all:``, no dependencies: the list is complete)."""

    def install(requirements: Sequence[str], target: Path) -> None:
        command = [python, "-m", "pip", "install", "--no-deps", "--only-binary=:all:",
                   "--platform", PLATFORM, "--implementation", "cp", "--python-version", PYTHON_VERSION,
                   "--target", str(target), "--no-compile", "--disable-pip-version-check", "--no-input",
                   "--quiet", *requirements]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
            reason = next((line for line in lines if line.startswith("ERROR:")), lines[-1] if lines else "")
            raise PackageError(f"pip could not install {' '.join(requirements)} as {PLATFORM} wheels for "
                               f"CPython {PYTHON_VERSION}: {reason.removeprefix('ERROR: ')}")

    return install


def _distribution(dist_info: Path) -> tuple[str, str]:
    """``(normalised name, version)`` of a ``name-version.dist-info`` folder."""
    name, _, version = dist_info.name.removesuffix(".dist-info").rpartition("-")
    return normalise(name), version


def wheel_tags(site: Path) -> dict[str, list[str]]:
    """``distribution -> tags`` from each ``*.dist-info/WHEEL`` under ``site``."""
    tags = {}
    for wheel in sorted(site.glob("*.dist-info/WHEEL")):
        name, _ = _distribution(wheel.parent)
        tags[name] = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines()
                      if line.startswith("Tag:")]
    return tags


def check_installed(site: Path, expected: Iterable[str]) -> dict[str, str]:
    """``distribution -> version`` installed under ``site``, after checking that they are exactly
    ``expected``, none of them is the runtime's and each wheel fits the runtime."""
    versions = dict(_distribution(info) for info in site.glob("*.dist-info"))
    provided = sorted(set(versions) & {normalise(name) for name in RUNTIME_PROVIDED})
    if provided:
        raise PackageError(f"the Lambda runtime provides {', '.join(provided)}: it must not be in the zip")
    wanted = {normalise(name) for name in expected}
    if set(versions) != wanted:
        raise PackageError(f"installed {', '.join(sorted(versions)) or 'nothing'}, expected {', '.join(sorted(wanted))}")
    for name, tags in wheel_tags(site).items():
        if not tags or not all(_COMPATIBLE_TAG.match(tag) for tag in tags):
            raise PackageError(f"{name} {versions[name]} is a wheel for {', '.join(tags) or 'no tag'}, not for "
                               f"CPython {PYTHON_VERSION} on {PLATFORM}")
    return {name: versions[name] for name in sorted(versions)}


def module_files(package_dir: Path, modules: Iterable[str] = HANDLER_MODULES) -> list[tuple[str, Path]]:
    """``(name in the zip, source file)`` of each module; ``package_dir`` is the pistats folder."""
    files = []
    for module in modules:
        parts = module.split(".")
        if parts[0] != "pistats":
            raise PackageError(f"{module} is not a pistats module")
        folder = package_dir.joinpath(*parts[1:])
        source = folder / "__init__.py" if folder.is_dir() else folder.with_suffix(".py")
        if not source.is_file():
            raise PackageError(f"{module} has no source file under {package_dir}")
        files.append(("/".join(["pistats", *source.relative_to(package_dir).parts]), source))
    return files


def site_files(site: Path) -> list[tuple[str, Path]]:
    """Every file pip installed under ``site``, without caches and scripts."""
    files = []
    for path in site.rglob("*"):
        relative = path.relative_to(site)
        left_out = relative.parts[0] == "bin" or "__pycache__" in relative.parts or path.suffix == ".pyc"
        if path.is_file() and not left_out:
            files.append((relative.as_posix(), path))
    return files


def write_zip(path: Path, files: Iterable[tuple[str, Path]]) -> int:
    """Write ``files`` (name in the zip, source) sorted by name, with fixed times and modes
    (0755 where the source is executable, else 0644); returns the number of entries."""
    entries = sorted(files)
    names = [name for name, _ in entries]
    if len(set(names)) != len(names):
        raise PackageError(f"two files for the same name in the zip: {sorted({n for n in names if names.count(n) > 1})}")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, source in entries:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if os.stat(source).st_mode & 0o111 else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.create_system = 3  # Unix: the modes above apply
            archive.writestr(info, source.read_bytes())
    return len(entries)


def checkout_root() -> Path:
    """The source checkout pistats runs from (it holds requirements.lock and deploy/)."""
    import pistats

    root = Path(pistats.__file__).resolve().parents[2]
    if not (root / "requirements.lock").is_file():
        raise PackageError(f"pistats is installed from {Path(pistats.__file__).parent}, not from a source "
                           f"checkout: building the Lambda package needs the checkout's requirements.lock "
                           f"and deploy/{TEMPLATE_NAME}")
    return root


def build(out_dir: Path, *, lock: Path | None = None, template: Path | None = None,
          package_dir: Path | None = None, installer: Installer | None = None) -> LambdaPackage:
    """Write the zip and the template into ``out_dir`` (created if missing).

    ``lock`` and ``template`` default to the checkout's; ``package_dir`` (the pistats folder
    whose sources go in) to the running pistats; ``installer`` to :func:`pip_installer`.
    """
    import pistats

    if lock is None or template is None:
        root = checkout_root()
        lock = lock or root / "requirements.lock"
        template = template or root / "deploy" / TEMPLATE_NAME
    package_dir = package_dir or Path(pistats.__file__).resolve().parent
    installer = installer or pip_installer()
    try:
        template_text = Path(template).read_text(encoding="utf-8")
    except OSError as error:
        raise PackageError(f"cannot read the template {template}: {error.strerror or error}") from None
    if not re.search(rf"^\s+CodeUri: {re.escape(ZIP_NAME)}\s*$", template_text, re.MULTILINE):
        raise PackageError(f"{template} does not deploy CodeUri: {ZIP_NAME} (the zip written beside it)")

    requirements = pinned_requirements(read_lock(lock))
    sources = module_files(package_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pistats-lambda-") as work:
        site = Path(work) / "site"
        site.mkdir()
        installer(requirements, site)
        versions = check_installed(site, DISTRIBUTIONS)
        partial = out_dir / (ZIP_NAME + ".partial")
        files = write_zip(partial, [*sources, *site_files(site)])
        zip_path = partial.replace(out_dir / ZIP_NAME)
    template_path = out_dir / TEMPLATE_NAME
    if template_path.resolve() != Path(template).resolve():
        shutil.copyfile(template, template_path)
    return LambdaPackage(zip_path, template_path, zip_path.stat().st_size, files, versions)
