"""The dashboard's static files (shipped in the package) and the headers they go out with.

Only the names listed here are served: no path from a URL ever reaches the disk.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {
    "app.js": "application/javascript",
    "charts.js": "application/javascript",
    "app.css": "text/css",
}
PAGE = "index.html"

# Scripts and styles only from this origin and never inline; plots are fetched with the
# bearer token and shown from blob: URLs; nothing may frame the page (clickjacking).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@lru_cache(maxsize=len(ASSETS) + 1)
def read_static(name: str) -> bytes:
    """An allow-listed static file (KeyError for any other name)."""
    if name != PAGE and name not in ASSETS:
        raise KeyError(name)
    return (STATIC / name).read_bytes()
