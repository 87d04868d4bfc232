"""WSGI entry point for deployments that run their own server: `gunicorn -c config/gunicorn.py app:app`."""
from canvas import create_app

app = create_app()
