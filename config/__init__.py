"""Deployment configuration: default settings, logging and the production WSGI server's settings."""
