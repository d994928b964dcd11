"""Identity: the canonical JSON that run IDs, config hashes and prepared-data keys are hashes of.

A leaf, so that every layer (the data preparation's cache key as much as the engine's run IDs)
hashes the same text for the same value.
"""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, ``str`` of anything JSON has no type for."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
