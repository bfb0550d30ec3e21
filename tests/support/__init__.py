"""Test tooling shared by integration tests: fault injection around real services."""
