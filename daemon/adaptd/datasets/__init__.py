"""Datasets: the demo data read from pinned package archives, and users' own files."""
