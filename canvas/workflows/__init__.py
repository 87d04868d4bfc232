"""Workflows: templates instantiated for an account, bound to its registered applications."""
