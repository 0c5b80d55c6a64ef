"""Speaker verification on self-supervised speech models: an SSL frontend that keeps every layer,
the MHFA back-end, and their registration into ESPnet's speaker task (registry.py)."""
