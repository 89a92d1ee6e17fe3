"""The platform's token issuer, played by tests/acceptance/in_image/mint_tokens.py in the image
under test (its own PyJWT and cryptography): keys, JWKS files and tokens for the Runtime security
manager."""

import json
from pathlib import Path

from tests.acceptance.containers import docker_run

IN_IMAGE = Path(__file__).with_name("in_image")
AUDIENCE, ISSUER = "runtime-tests", "https://platform.runtime.test"
# what a webserver needs to accept the minted tokens, with their folder mounted at /auth
AUTH_ENV = {"RUNTIME_AUTH_JWKS_FILE": "/auth/jwks.json", "RUNTIME_AUTH_AUDIENCE": AUDIENCE,
            "RUNTIME_AUTH_ISSUER": ISSUER, "RUNTIME_AUTH_REVOKED_FILE": "/auth/revoked.txt"}


def mint(img, directory, *args) -> dict:
    """Keys written into ``directory`` (chmod 755 it), tokens returned."""
    proc = docker_run(img, "python3.9", "/checks/mint_tokens.py", "/auth", AUDIENCE, ISSUER,
                      *args, user="0",
                      volumes={str(directory): "/auth", str(IN_IMAGE): "/checks:ro"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])
