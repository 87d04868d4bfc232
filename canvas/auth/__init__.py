"""Who is calling: Consumer/SecretKey headers (or v2 Basic auth) resolved once per request into a Principal."""
from canvas.auth.principal import Principal, account_managers, admins, current_principal

__all__ = ["Principal", "account_managers", "admins", "current_principal"]
