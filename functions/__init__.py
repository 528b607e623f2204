"""Thin HTTP/timer/queue adapters, one Blueprint per area: parse, call shared/, respond."""
