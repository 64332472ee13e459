"""Serving: base model + adapter slots, micro-batching, hot swap, HTTP API."""
