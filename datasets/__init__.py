"""Dataset recipes (import package ``xdplug_datasets``), registered through ``register_datasets``."""
