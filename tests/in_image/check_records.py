"""Run inside an image by python3.9: every installed distribution's RECORD against the files.

Each row of each ``*.dist-info/RECORD`` under dist-packages names a file by its path relative to
dist-packages (``../../../bin/airflow`` for a script); the file must be there, with the recorded
sha256 and size. Prints one JSON object: counts and the rows that do not match."""

import base64
import csv
import hashlib
import json
import os

SITE = "/usr/local/lib/python3.9/dist-packages"


def check(record):
    bad, rows = [], 0
    with open(record, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if not row:
                continue
            rows += 1
            path = os.path.normpath(os.path.join(SITE, row[0]))
            if not os.path.isfile(path):
                bad.append([record, row[0], "missing"])
            elif row[1]:
                with open(path, "rb") as data:
                    content = data.read()
                algo, _, want = row[1].partition("=")
                got = base64.urlsafe_b64encode(hashlib.new(algo, content).digest()).rstrip(b"=")
                if got.decode() != want or str(len(content)) != row[2]:
                    bad.append([record, row[0], "changed"])
    return rows, bad


def main():
    records = sorted(os.path.join(SITE, d, "RECORD") for d in os.listdir(SITE)
                     if d.endswith(".dist-info") and os.path.exists(os.path.join(SITE, d, "RECORD")))
    total, outside, bad = 0, 0, []
    for record in records:
        rows, problems = check(record)
        total += rows
        bad += problems
    for record in records:
        with open(record, newline="", encoding="utf-8") as f:
            outside += sum(1 for row in csv.reader(f) if row and row[0].startswith("../"))
    print(json.dumps({"records": len(records), "rows": total, "outside_site": outside,
                      "bad": bad[:20], "bad_count": len(bad)}))


if __name__ == "__main__":
    main()
