"""Fault benchmarks: what a crash or an outage costs, measured on a real daemon process."""
