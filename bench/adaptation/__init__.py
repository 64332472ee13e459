"""Adaptation benchmarks on the demo's real shift (movie snippets -> tweets)."""
