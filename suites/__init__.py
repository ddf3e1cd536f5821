"""Suites: YAML suites, task code (data and model factories) and claim files."""
