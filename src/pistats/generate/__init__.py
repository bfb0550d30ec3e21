"""Generated traffic: realistic ingest records as a recording, plus what a pipeline must make of it."""

from pistats.generate.generator import GenerateConfig, GenerateResult, generate, load_expected

__all__ = ["GenerateConfig", "GenerateResult", "generate", "load_expected"]
