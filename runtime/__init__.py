"""Deterministic LLM inference over HTTP: llama-cpp-python behind a small FastAPI service."""
