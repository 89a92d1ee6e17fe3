"""The support policy of the Runtime lines, in one file: which lines are LTS, and until when
each line is supported. `invoke release --lts` writes it; the image's LTS mark reads it."""

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from rules.common import atomic
from rules.common.errors import UserError

POLICY = "runtime/support.json"


@dataclass(frozen=True)
class Support:
    lts: bool
    supported_until: str  # YYYY-MM-DD, the last day of support


def load(root: Path) -> dict[str, Support]:
    path = Path(root) / POLICY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{POLICY} is missing: it says which lines are LTS and until when") \
            from None
    except json.JSONDecodeError as e:
        raise UserError(f"{POLICY}:{e.lineno}:{e.colno}: {e.msg}") from None
    lines = data.get("lines") if isinstance(data, dict) else None
    if not isinstance(lines, dict):
        raise UserError(f"{POLICY}: expected {{\"lines\": {{LINE: {{\"lts\": …, "
                        "\"supported_until\": …}}}}}}")
    out = {}
    for name, entry in lines.items():
        where = f"{POLICY}: line {name!r}"
        if not isinstance(entry, dict) or set(entry) != {"lts", "supported_until"}:
            raise UserError(f"{where}: expected exactly the fields lts and supported_until")
        if not isinstance(entry["lts"], bool):
            raise UserError(f"{where}: field 'lts': expected true or false")
        try:
            date.fromisoformat(entry["supported_until"])
        except (TypeError, ValueError):
            raise UserError(f"{where}: field 'supported_until': expected a date YYYY-MM-DD, "
                            f"got {entry['supported_until']!r}") from None
        out[name] = Support(entry["lts"], entry["supported_until"])
    return out


def save(root: Path, policy: dict[str, Support]) -> None:
    ordered = sorted(policy.items(), key=lambda kv: tuple(map(int, kv[0].split("."))))
    data = {"lines": {name: {"lts": s.lts, "supported_until": s.supported_until}
                      for name, s in ordered}}
    atomic.write_text(Path(root) / POLICY, json.dumps(data, indent=2) + "\n")


def status(entry: Support, today: date | None = None) -> str:
    today = today or date.today()
    return "supported" if date.fromisoformat(entry.supported_until) >= today else "ended"
