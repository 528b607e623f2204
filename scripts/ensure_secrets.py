"""azd postprovision hook: create the platform's Key Vault secrets that do not exist yet.

Generated here, never in Bicep: a template cannot tell whether a secret already exists,
so it would overwrite the signing keys (signing everyone out, making signed model
versions unverifiable) on every deployment. azd's ``secretOrRandomPassword`` is no
substitute either: it generates 15 characters, below the 32 bytes a signing key needs.

Existing secrets are never read or changed. Values go to ``az`` through a 0600 temporary
file, never on a command line. Needs Key Vault Secrets Officer on the vault (Bicep grants
it to the principal running azd).

    python scripts/ensure_secrets.py            # inside azd: AZURE_KEY_VAULT_NAME is set
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence

# Secret name -> how to make a value; 48 random bytes for keys, 32 characters for passwords.
SIGNING_KEYS = ("jwt-signing-key", "model-signing-key")
Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]


def _az(args: Sequence[str]) -> subprocess.CompletedProcess:
    az = shutil.which("az")
    if az is None:
        raise RuntimeError("the Azure CLI (az) is needed to create the Key Vault secrets")
    return subprocess.run([az, *args], capture_output=True, text=True, timeout=120)


def new_value(name: str) -> str:
    return secrets.token_urlsafe(48 if name in SIGNING_KEYS else 24)


def exists(vault: str, name: str, az: Runner = _az) -> bool:
    out = az(["keyvault", "secret", "show", "--vault-name", vault, "-n", name, "--query", "id"])
    if out.returncode == 0:
        return True
    if "SecretNotFound" in out.stderr or "was not found" in out.stderr:
        return False
    raise RuntimeError(f"cannot read secret {name} of {vault}: {out.stderr.strip()[:300]}")


def create(vault: str, name: str, value: str, az: Runner = _az) -> None:
    with tempfile.NamedTemporaryFile("w", delete=False, encoding="utf-8") as file:
        os.chmod(file.name, 0o600)
        file.write(value)
    try:
        out = az(
            ["keyvault", "secret", "set", "--vault-name", vault, "-n", name, "--file", file.name,
             "--encoding", "utf-8", "--content-type", "text/plain", "--query", "id"]
        )  # fmt: skip
    finally:
        os.unlink(file.name)
    if out.returncode != 0:
        raise RuntimeError(f"cannot write secret {name} of {vault}: {out.stderr.strip()[:300]}")


def ensure(vault: str, names: Sequence[str], az: Runner = _az) -> list[str]:
    """Create each absent secret; the names created."""
    created = []
    for name in dict.fromkeys(names):
        if not exists(vault, name, az):
            create(vault, name, new_value(name), az)
            created.append(name)
    return created


def wanted(environ: dict[str, str]) -> list[str]:
    """The signing keys plus every pre-defined user's password secret (a Bicep output)."""
    users = [n.strip() for n in environ.get("PREDEFINED_USER_SECRETS", "").split(",")]
    return [*SIGNING_KEYS, *(n for n in users if n)]


def main() -> int:
    vault = os.environ.get("AZURE_KEY_VAULT_NAME", "")
    if not vault:
        print("AZURE_KEY_VAULT_NAME is not set (run through azd)", file=sys.stderr)
        return 1
    created = ensure(vault, wanted(dict(os.environ)))
    print(f"{vault}: created {', '.join(created) if created else 'nothing (all present)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
