"""Pure detectors: each takes windows (or arrays) and settings and returns Signals; no clock,
no store, no logging of data."""
