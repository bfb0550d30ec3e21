"""Makes the shared test doubles in ``store_fakes.py`` importable by this folder's tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
