"""Secrets at rest: Fernet encryption with rotatable keys (see box.py)."""
from canvas.secrets.box import SecretBox, SecretDecryptError

__all__ = ["SecretBox", "SecretDecryptError"]
