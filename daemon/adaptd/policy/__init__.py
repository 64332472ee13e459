"""Policies: the schema of policy files and the pure evaluate(...)."""
