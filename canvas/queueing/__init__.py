"""Redis: key names and queue names (in keys.py only), the embedded server, and run dispatch."""
