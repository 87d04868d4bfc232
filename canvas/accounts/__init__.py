"""Organizations, accounts, API keys and account activation."""
