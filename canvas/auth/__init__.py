"""Who is calling: Consumer/SecretKey headers (or v2 Basic auth) resolved once per request into a Principal."""
from canvas.auth.principal import Principal, current_principal

__all__ = ["Principal", "current_principal"]
