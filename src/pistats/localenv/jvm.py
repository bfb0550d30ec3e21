"""Compiling the project's Java (``jvm/``) outside the topology jar, for tests and benchmarks
that run it beside Storm's own classes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pistats.localenv.paths import project_root, storm_home

MULTILANG_SERIALIZER = Path("jvm/pistats/multilang/FastJsonSerializer.java")


def compile_with_serializer(driver: Path, classes: Path) -> str:
    """javac the multilang serializer and ``driver`` (both relative to the checkout) into
    ``classes`` against Storm's jars; returns the classpath to run them with."""
    root = project_root()
    classpath = f"{storm_home() / 'lib'}/*"
    subprocess.run(["javac", "-nowarn", "-d", str(classes), "-cp", classpath,
                    str(root / MULTILANG_SERIALIZER), str(root / driver)],
                   check=True, capture_output=True, timeout=300)
    return f"{classes}:{classpath}"
