"""Security manager: platform-issued identities and roles (a Runtime module)."""
