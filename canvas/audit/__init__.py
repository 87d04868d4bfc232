"""The audit log: who changed what, when, acting as whom, with the before/after of the changed fields."""
