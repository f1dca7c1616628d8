"""Let the tests run from a checkout where this distribution is not pip-installed."""
import os
import sys
from pathlib import Path

# The tests never touch a network: Hugging Face libraries look in their caches only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

DISTRIBUTION_ROOT = str(Path(__file__).resolve().parents[1])
if DISTRIBUTION_ROOT not in sys.path:
    sys.path.insert(0, DISTRIBUTION_ROOT)
