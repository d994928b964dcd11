"""The RecBole boundary: its Config built safely (compat), its datasets (dataset), its trainer (trainer)."""
