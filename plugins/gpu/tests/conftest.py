"""Let the tests run from a checkout where this distribution is not pip-installed."""
import sys
from pathlib import Path

DISTRIBUTION_ROOT = str(Path(__file__).resolve().parents[1])
if DISTRIBUTION_ROOT not in sys.path:
    sys.path.insert(0, DISTRIBUTION_ROOT)
