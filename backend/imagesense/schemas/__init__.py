"""Pydantic models: the public contract of the API."""
