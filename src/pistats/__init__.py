"""piStats: the library behind the pistats Storm topology.

Everything that decides anything lives here, importable and testable without Storm:
this package never imports streamparse or pystorm (tests/unit/test_import_boundary.py
enforces it). Spouts and bolts in ``src/spouts`` and ``src/bolts`` are thin adapters.
"""

__version__ = "0.1.0"
