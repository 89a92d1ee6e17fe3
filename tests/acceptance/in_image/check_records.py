"""Run inside an image by python3.9: every installed distribution's RECORD against the files.

Each row of each ``*.dist-info/RECORD`` under dist-packages names a file by its path relative to
dist-packages (``../../../bin/airflow`` for a script); the file must be there, with the recorded
sha256 and size. A path that several distributions install (some wheels ship a top-level
``tests/`` package) must match one of them. Prints one JSON object: counts and the rows that do
not match."""

import base64
import collections
import csv
import hashlib
import json
import os

SITE = "/usr/local/lib/python3.9/dist-packages"


def rows_of(record):
    with open(record, newline="", encoding="utf-8") as f:
        return [row for row in csv.reader(f) if row]


def digest(path, algo):
    with open(path, "rb") as f:
        content = f.read()
    encoded = base64.urlsafe_b64encode(hashlib.new(algo, content).digest()).rstrip(b"=")
    return f"{algo}={encoded.decode()}", str(len(content))


def main():
    records = sorted(os.path.join(SITE, d, "RECORD") for d in os.listdir(SITE)
                     if d.endswith(".dist-info")
                     and os.path.exists(os.path.join(SITE, d, "RECORD")))
    claims = collections.defaultdict(list)  # file -> [(record, hash, size)]
    rows = outside = 0
    for record in records:
        for row in rows_of(record):
            rows += 1
            outside += row[0].startswith("../")
            claims[os.path.normpath(os.path.join(SITE, row[0]))].append((record, *row[1:3]))
    bad = []
    for path, claimed in sorted(claims.items()):
        if not os.path.isfile(path):
            bad.append([path, "missing", [c[0] for c in claimed]])
            continue
        hashed = [c for c in claimed if c[1]]
        if hashed and not any(digest(path, c[1].partition("=")[0]) == tuple(c[1:]) for c in hashed):
            bad.append([path, "changed", [c[0] for c in claimed]])
    print(json.dumps({"records": len(records), "rows": rows, "outside_site": outside,
                      "shared": sum(len(c) > 1 for c in claims.values()),
                      "bad": bad[:20], "bad_count": len(bad)}))


if __name__ == "__main__":
    main()
