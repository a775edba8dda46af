"""Benchmarks: each prints JSON figures (`python -m bench.<name>`); never timed assertions in tests."""
