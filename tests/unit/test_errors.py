"""The library's errors: one line each, settings named the library's way unless the caller says otherwise."""

import doctest

import pistats.errors
from pistats.errors import ConfigError


def test_docstring_examples():
    assert doctest.testmod(pistats.errors).failed == 0


def test_config_error_names_settings_its_own_way_unless_told():
    error = ConfigError("events", "too small for `skewed_months`")
    assert (str(error), error.field) == ("events too small for skewed_months", "events")
    assert error.describe({"events": "--events"}.get) == "--events too small for skewed_months"
    assert isinstance(error, ValueError)
