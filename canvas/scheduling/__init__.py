"""Scheduling: the Quartz cron dialect and the scheduler's trigger."""
