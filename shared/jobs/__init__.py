"""Machinery shared by the queue-driven jobs (training, batch scoring)."""
