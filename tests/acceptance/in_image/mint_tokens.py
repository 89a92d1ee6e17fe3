"""Run inside an image by python3.9 (its PyJWT and cryptography): play the platform's token
issuer for the security tests. Usage: mint_tokens.py OUT_DIR AUDIENCE ISSUER [skewed]

Writes OUT_DIR/jwks.json (an RSA and an EC key), OUT_DIR/jwks-rotated.json (a new RSA key
only), OUT_DIR/rsa-1.pub.pem, OUT_DIR/revoked.txt, OUT_DIR/signing/rsa-1.pem, and prints JSON:
{"good": {name: token}, "bad": {name: token}, "order": {name: token}} ("order": valid tokens of
the same subjects issued at different times, for the replay checks). With ``skewed``: only a
token that expired ten seconds ago, signed with the saved rsa-1 key (for the clock-leeway check,
minted when used).
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time

import jwt
from cryptography.hazmat.backends import default_backend
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import RSAAlgorithm


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rsa_key():
    return rsa.generate_private_key(65537, 2048, default_backend())


def jwk(public, kid, kind):
    if kind == "RSA":
        data = json.loads(RSAAlgorithm.to_jwk(public))
    else:  # (PyJWT 1.7 writes RSA JWKs only)
        numbers = public.public_numbers()
        data = {"kty": "EC", "crv": "P-256", "x": b64(numbers.x.to_bytes(32, "big")),
                "y": b64(numbers.y.to_bytes(32, "big"))}
    data.update(kid=kid, use="sig", alg="RS256" if kind == "RSA" else "ES256")
    return data


def main():
    out, aud, iss = sys.argv[1:4]
    if sys.argv[4:] == ["skewed"]:
        with open(os.path.join(out, "signing", "rsa-1.pem"), "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None, default_backend())
        now = int(time.time())
        body = {"sub": "gina", "roles": ["Viewer"], "aud": aud, "iss": iss, "iat": now - 70,
                "exp": now - 10}
        token = jwt.encode(body, key, algorithm="RS256", headers={"kid": "rsa-1"}).decode()
        print(json.dumps({"good": {"skewed": token}}))
        return
    rsa1, rsa2, other = rsa_key(), rsa_key(), rsa_key()
    os.makedirs(os.path.join(out, "signing"), mode=0o700)
    with open(os.path.join(out, "signing", "rsa-1.pem"), "wb") as f:
        f.write(rsa1.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    ec1 = ec.generate_private_key(ec.SECP256R1(), default_backend())
    for name, keys in (("jwks.json", [jwk(rsa1.public_key(), "rsa-1", "RSA"),
                                      jwk(ec1.public_key(), "ec-1", "EC")]),
                       ("jwks-rotated.json", [jwk(rsa2.public_key(), "rsa-2", "RSA")])):
        with open(os.path.join(out, name), "w") as f:
            json.dump({"keys": keys}, f)
    with open(os.path.join(out, "revoked.txt"), "w") as f:
        f.write("# subjects the platform deleted\ndeleted-user\n")
    public_pem = rsa1.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    with open(os.path.join(out, "rsa-1.pub.pem"), "wb") as f:
        f.write(public_pem)
    now = int(time.time())

    def claims(sub="alice", roles=("Viewer",), iat=now, **extra):
        body = {"sub": sub, "email": f"{sub.strip()}@example.com",
                "name": f"{sub.strip().title()} Test", "roles": list(roles), "aud": aud,
                "iss": iss, "iat": iat, "nbf": now - 5, "exp": now + 3600}
        body.update(extra)
        return {k: v for k, v in body.items() if v is not None}

    def rs(body, key=rsa1, kid="rsa-1"):
        return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid}).decode()

    def unsigned(header, body, signature=b""):
        return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(body).encode()),
                         b64(signature)])

    good = {role: rs(claims(sub=role.lower(), roles=[role])) for role in
            ("Viewer", "User", "Op", "Admin")}
    good["es256"] = jwt.encode(claims(sub="erin", roles=["Viewer"]), ec1, algorithm="ES256",
                               headers={"kid": "ec-1"}).decode()
    good["carol-op"] = rs(claims(sub="carol", roles=["Op"], iat=now - 60))
    good["carol-viewer"] = rs(claims(sub="carol", roles=["Viewer"]))
    good["dave-viewer"] = rs(claims(sub="dave", roles=["Viewer"]))
    good["rotated"] = rs(claims(sub="frank", roles=["Viewer"]), key=rsa2, kid="rsa-2")
    # names and emails with surrounding and repeated spaces, a name of spaces only
    good["zoe-spaced"] = rs(claims(sub="zoe", roles=["Viewer"], name="  Zoe   Quinn  ",
                                   email=" zoe@example.com "))
    good["yan-blank-name"] = rs(claims(sub="yan", roles=["Viewer"], name="   "))
    # demoted (rex), promoted (sam), two tokens of one iat that disagree (tia)
    order = {
        "rex-admin-old": rs(claims(sub="rex", roles=["Admin"], iat=now - 120)),
        "rex-viewer-new": rs(claims(sub="rex", roles=["Viewer"], iat=now - 60)),
        "sam-viewer-old": rs(claims(sub="sam", roles=["Viewer"], iat=now - 120)),
        "sam-admin-new": rs(claims(sub="sam", roles=["Admin"], iat=now - 60)),
        "tia-admin": rs(claims(sub="tia", roles=["Admin"], iat=now - 90)),
        "tia-viewer": rs(claims(sub="tia", roles=["Viewer"], iat=now - 90)),
    }
    # a header nested 1,400 levels deep (RecursionError in a JSON parser), under 4 KB
    deep = '{"alg":"RS256","x":' + "[" * 1400 + "]" * 1400 + "}"
    deep_header = ".".join([b64(deep.encode()), b64(json.dumps({"sub": "mallory"}).encode()),
                            b64(b"signature")])

    hs_header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
    hs_body = claims(sub="mallory", roles=["Admin"])
    signing_input = f"{b64(json.dumps(hs_header).encode())}.{b64(json.dumps(hs_body).encode())}"
    hs_sig = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    viewer = rs(claims(sub="mallory", roles=["Viewer"]))
    head, _, sig = viewer.split(".")
    altered = ".".join([head, b64(json.dumps(claims(sub="mallory", roles=["Admin"])).encode()),
                        sig])
    bad = {
        "garbage": "this-is-not-a-token",
        "alg-none": unsigned({"alg": "none", "typ": "JWT"}, claims(sub="mallory",
                                                                   roles=["Admin"])),
        "hs256-public-key-as-secret": f"{signing_input}.{b64(hs_sig)}",
        "wrong-key": rs(claims(sub="mallory", roles=["Admin"]), key=other),
        "expired": rs(claims(sub="mallory", exp=now - 3600)),
        "nbf-in-future": rs(claims(sub="mallory", nbf=now + 3600)),
        "wrong-aud": rs(claims(sub="mallory", aud="another-deployment")),
        "wrong-iss": rs(claims(sub="mallory", iss="https://evil.example.com")),
        "roles-not-a-list": rs(claims(sub="mallory") | {"roles": "Admin"}),
        "unknown-role": rs(claims(sub="mallory", roles=["Superuser"])),
        "empty-roles": rs(claims(sub="mallory", roles=[])),
        "payload-altered": altered,
        "deleted-user": rs(claims(sub="deleted-user", roles=["Admin"])),
        "oversized": rs(claims(sub="mallory", padding="x" * 3000)),
        "no-exp": rs(claims(sub="mallory", exp=None)),
        "no-sub": rs(claims(sub="mallory") | {"sub": ""}),
        "es256-with-rsa-kid": jwt.encode(claims(sub="mallory"), ec1, algorithm="ES256",
                                         headers={"kid": "rsa-1"}).decode(),
        "rs256-with-ec-kid": rs(claims(sub="mallory"), kid="ec-1"),
        "unknown-kid": rs(claims(sub="mallory"), kid="nobody"),
        "crit": jwt.encode(claims(sub="mallory", roles=["Admin"]), rsa1, algorithm="RS256",
                           headers={"kid": "rsa-1", "crit": ["anything"],
                                    "anything": True}).decode(),
        "exp-string": rs(claims(sub="mallory", exp=str(now + 3600))),
        "exp-huge": rs(claims(sub="mallory", exp=1e300)),
        "iat-string": rs(claims(sub="mallory", iat=str(now))),
        "nbf-string": rs(claims(sub="mallory", nbf=str(now - 5))),
        "iat-in-future": rs(claims(sub="mallory", iat=now + 3600, exp=now + 7200)),
        "no-iat": rs(claims(sub="mallory", iat=None)),
        "lifetime-too-long": rs(claims(sub="mallory", exp=now + 86400 * 30)),
        "deep-header": deep_header,
        "sub-with-spaces": rs(claims(sub=" qsadmin ", roles=["Admin"])),
        "sub-with-control": rs(claims(sub="qsadmin\u0000", roles=["Admin"])),
        "sub-not-nfkc": rs(claims(sub="\uff51\uff53admin", roles=["Admin"])),  # fullwidth qs
        "name-with-control": rs(claims(sub="mallory", name="Mal\u202eLory")),
        "email-with-newline": rs(claims(sub="mallory", email="m@example.com\nBcc: x@y.z")),
        "name-too-long": rs(claims(sub="mallory", name="M" * 65)),
    }
    print(json.dumps({"good": good, "bad": bad, "order": order}))


if __name__ == "__main__":
    main()
