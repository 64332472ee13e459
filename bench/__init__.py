"""Benchmarks: each compares adaptd against a named peer on the same data in the same run."""
