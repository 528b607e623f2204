"""Create local.settings.json from the example, with fresh random token and model signing keys.

The key is generated here rather than committed: no secret lives in the repository.
"""

import json
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    target = ROOT / "local.settings.json"
    if target.exists():
        print(f"{target.name} exists; leaving it as it is")
        return 0
    settings = json.loads((ROOT / "local.settings.example.json").read_text())
    settings["Values"]["JWT_SIGNING_KEY"] = secrets.token_urlsafe(48)
    settings["Values"]["MODEL_SIGNING_KEY"] = secrets.token_urlsafe(48)
    target.write_text(json.dumps(settings, indent=2) + "\n")
    print(f"created {target.name} (demo admin: see README)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
