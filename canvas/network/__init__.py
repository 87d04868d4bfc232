"""Outbound network access: the SSRF guard every connection to a third-party system goes through.

`guard` decides which addresses may be reached (`NetworkPolicy`) and builds a `requests` session that enforces it on
every request and redirect; `rest_auth` turns a REST application's credentials into `requests` authentication.
"""
