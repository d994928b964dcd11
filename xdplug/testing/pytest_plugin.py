"""pytest plugin with fixtures for xdplug plugin authors (entry point ``pytest11``)."""
