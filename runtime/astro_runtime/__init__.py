"""Version metadata, entrypoint, concurrency defaults, high availability (Runtime module; built out in its own issue)."""
