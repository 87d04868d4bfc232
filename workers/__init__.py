"""Process entry points: each builds the app explicitly and runs one long-lived loop."""
