"""Retention housekeeping: expired raw log lines are dropped on a schedule, not left to merges."""
