"""Security manager: platform-issued identities and roles (Runtime module; built out in its own issue)."""
