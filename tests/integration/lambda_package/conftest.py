"""The Lambda package as the runtime sees it: ``pistats lambda package`` built once per session,
unpacked into an empty folder, and a folder holding only what the runtime provides (boto3,
botocore and their dependencies, copied from this virtualenv by their installed file lists)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import distribution
from pathlib import Path

import pytest

from pistats.deploy.lambda_package import RUNTIME_PROVIDED, ZIP_NAME
from tests.integration.ingest import conftest as ingest

PISTATS = str(Path(sys.executable).parent / "pistats")

kinesis_client = ingest.kinesis_client
ingest_stream = ingest.ingest_stream
key_store = ingest.key_store


@pytest.fixture(scope="session")
def lambda_package(tmp_path_factory) -> Path:
    """The folder ``pistats lambda package --out`` wrote (pip fetches the wheels: network)."""
    out = tmp_path_factory.mktemp("lambda-package")
    result = subprocess.run([PISTATS, "lambda", "package", "--out", str(out)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out / ZIP_NAME} ("), result.stdout
    return out


@pytest.fixture(scope="session")
def task_dir(lambda_package, tmp_path_factory) -> Path:
    """The zip unpacked into an empty folder: the function's /var/task."""
    task = tmp_path_factory.mktemp("task")
    assert list(task.iterdir()) == []
    with zipfile.ZipFile(lambda_package / ZIP_NAME) as archive:
        archive.extractall(task)
    return task


@pytest.fixture(scope="session")
def runtime_dir(tmp_path_factory) -> Path:
    """boto3 and what it needs, as the Lambda Python runtime provides them, and nothing else."""
    runtime = tmp_path_factory.mktemp("runtime")
    for name in RUNTIME_PROVIDED:
        dist = distribution(name)
        for file in dist.files or ():
            if file.parts[0] in ("..", "bin") or "__pycache__" in file.parts:
                continue
            target = runtime / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(dist.locate_file(file), target)
    return runtime
