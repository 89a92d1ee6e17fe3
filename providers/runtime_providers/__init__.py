"""Provider configuration baked into the image (Runtime module; built out in its own issue)."""
