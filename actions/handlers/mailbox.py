"""Handlers: filled in below."""
