"""Applications: the catalog of third-party systems (catalog.py) and checks of their credentials (credentials.py)."""
