"""Version metadata, entrypoint, concurrency defaults, high availability (a Runtime module)."""
