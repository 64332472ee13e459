"""Soak: resident memory of a daemon serving and swapping for a long time."""
