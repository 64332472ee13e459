"""Monitors: pure detectors and window statistics; Evidently behind one module."""
