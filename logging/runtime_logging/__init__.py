"""Task logs that survive store outages and dead workers (a Runtime module)."""
