"""The ``pistats`` command: one module per subcommand, each with ``register`` and ``main``."""
