"""Index ``function_app`` the way the Python worker does and print it as JSON.

``app.get_functions()`` may be called only once per app object (it validates name
uniqueness against everything seen before), so this runs in a fresh process, like the
worker. Used by tests/unit/test_indexing.py and tests/unit/test_infra.py.

    python scripts/index_functions.py > functions.json
"""

from __future__ import annotations

import inspect
import json
import sys
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return getattr(value, "value", value)


def _annotation(value: Any) -> str:
    if value is inspect.Parameter.empty or value is inspect.Signature.empty:
        return ""
    return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', str(value))}"


def index(module: str = "function_app") -> list[dict[str, Any]]:
    sys.path.insert(0, str(ROOT))
    app = __import__(module).app
    out = []
    for function in app.get_functions():
        user = function.get_user_function()
        hints = typing.get_type_hints(user)
        params = {
            name: _annotation(hints.get(name, p.annotation))
            for name, p in inspect.signature(user).parameters.items()
        }
        out.append(
            {
                "name": function.get_function_name(),
                "trigger": {
                    k: _plain(v) for k, v in function.get_trigger().get_dict_repr().items()
                },
                "bindings": [
                    {k: _plain(v) for k, v in b.get_dict_repr().items()}
                    for b in function.get_bindings()
                ],
                "params": params,
                "returns": _annotation(hints.get("return", inspect.Signature.empty)),
                "is_async": inspect.iscoroutinefunction(user),
            }
        )
    return out


if __name__ == "__main__":
    json.dump(index(sys.argv[1] if len(sys.argv) > 1 else "function_app"), sys.stdout, indent=1)
