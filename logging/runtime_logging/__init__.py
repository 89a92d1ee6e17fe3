"""Task logs that survive store outages and dead workers (Runtime module; built out in its own issue)."""
