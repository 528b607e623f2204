"""infra/bicep/main.bicep against the code: every setting the code reads is set there (or
has a default documented in the README), and every table, queue and container the code
uses is created there. No Bicep compiler offline: the file is read as text."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from shared.settings import Settings
from tests.unit.test_indexing import index

ROOT = Path(__file__).resolve().parents[2]
MAIN = (ROOT / "infra" / "bicep" / "main.bicep").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")

# Read by the Functions host or the platform itself, not by shared/settings.py.
HOST_SETTINGS = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AzureWebJobsDisableHomepage",
}
# Set by the platform on every Flex Consumption instance.
PLATFORM_SET = {"WEBSITE_INSTANCE_ID", "APPLICATIONINSIGHTS_CONNECTION_STRING"}
# Settings with no usable default that Azure must set.
REQUIRED_IN_AZURE = {
    "APP_ENVIRONMENT",
    "GIT_METADATA",
    "STORAGE_ACCOUNT_NAME",
    "AZURE_CLIENT_ID",
    "KEY_VAULT_URL",
    "TRAINING_SCHEDULE",
    "PREDEFINED_USERS",
}


def bicep_block(name: str, opener: str) -> str:
    closer = {"{": "}", "[": "]"}[opener]
    start = MAIN.index(f"var {name} = {opener}")
    depth = 0
    for end in range(start, len(MAIN)):
        depth += {opener: 1, closer: -1}.get(MAIN[end], 0)
        if depth == 0 and MAIN[end] == closer:
            return MAIN[start:end]
    raise AssertionError(f"unbalanced var {name}")


def bicep_strings(name: str) -> set[str]:
    return set(re.findall(r"'([^']+)'", bicep_block(name, "[")))


def app_settings() -> set[str]:
    return set(re.findall(r"^\s+([A-Za-z_][A-Za-z0-9_]*):", bicep_block("appSettings", "{"), re.M))


def setting_names(field: str) -> list[str]:
    return Settings.env_names(field)


def test_every_setting_is_set_by_bicep_or_documented_with_its_default() -> None:
    bicep = app_settings()
    missing = []
    for field in Settings.model_fields:
        names = setting_names(field)
        if not any(n in bicep for n in names) and not any(f"`{n}`" in README for n in names):
            missing.append(names[0])
    assert missing == []


def test_settings_azure_needs_are_set_by_bicep() -> None:
    assert app_settings() >= REQUIRED_IN_AZURE | HOST_SETTINGS
    assert "FUNCTIONS_WORKER_RUNTIME" not in app_settings()  # refused on Flex Consumption


def test_bicep_sets_only_settings_something_reads() -> None:
    known = {n for f in Settings.model_fields for n in setting_names(f)} | HOST_SETTINGS
    assert app_settings() - known == set()


def test_binding_expressions_resolve_to_app_settings() -> None:
    bicep = app_settings()
    for function in index():
        for binding in function["bindings"]:
            for name in re.findall(r"%([A-Za-z0-9_]+)%", json.dumps(binding)):
                assert name in bicep, (function["name"], name)
            connection = binding.get("connection")
            if connection:
                assert f"{connection}__accountName" in bicep


def test_only_expected_environment_reads_outside_settings() -> None:
    reads = set()
    for path in list((ROOT / "shared").rglob("*.py")) + list((ROOT / "functions").rglob("*.py")):
        if path.name == "settings.py":
            continue
        text = path.read_text(encoding="utf-8")
        reads |= set(re.findall(r"os\.environ\.get\(\s*\"([A-Za-z0-9_]+)\"", text))
        reads |= set(re.findall(r"os\.getenv\(\s*\"([A-Za-z0-9_]+)\"", text))
    assert reads <= PLATFORM_SET | app_settings()


def _string_constants() -> dict[str, set[str]]:
    """Module-level NAME = "literal" constants of shared/, grouped by kind of name."""
    found: dict[str, set[str]] = {"table": set(), "container": set(), "queue": set()}
    for path in (ROOT / "shared").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Constant):
                continue
            for target in node.targets:
                if not isinstance(target, ast.Name) or not isinstance(node.value.value, str):
                    continue
                for kind in found:
                    if target.id == kind.upper() or target.id.endswith(f"_{kind.upper()}"):
                        found[kind].add(node.value.value)
    return found


def _resource_names() -> dict[str, set[str]]:
    """Every storage name the code uses: shared/resources.py names them all."""
    from shared.resources import Containers, Queues, Tables

    def names(kind: type) -> set[str]:
        return {v for k, v in vars(kind).items() if k.isupper() and isinstance(v, str)}

    return {"table": names(Tables), "container": names(Containers), "queue": names(Queues)}


def test_every_table_container_and_queue_the_code_uses_is_created_by_bicep() -> None:
    used = _string_constants()
    for kind, names in _resource_names().items():
        used[kind] |= names
    for function in index():
        trigger = function["trigger"]
        if trigger.get("type") == "queueTrigger":
            used["queue"].add(trigger["queueName"])
    assert used["table"] and used["container"] and used["queue"]
    assert used["table"] <= bicep_strings("tables")
    assert used["container"] <= bicep_strings("blobContainers")
    assert used["queue"] <= bicep_strings("queues")


def test_storage_and_vault_are_locked_down() -> None:
    storage = (ROOT / "infra/bicep/modules/storage.bicep").read_text(encoding="utf-8")
    vault = (ROOT / "infra/bicep/modules/keyvault.bicep").read_text(encoding="utf-8")
    monitoring = (ROOT / "infra/bicep/modules/monitoring.bicep").read_text(encoding="utf-8")
    for line in ("allowSharedKeyAccess: false", "allowBlobPublicAccess: false", "'TLS1_2'"):
        assert line in storage
    for line in (
        "enableRbacAuthorization: true",
        "enableSoftDelete: true",
        "enablePurgeProtection: true",
    ):
        assert line in vault
    assert "DisableLocalAuth: true" in monitoring


def test_the_app_identity_gets_exactly_the_listed_roles() -> None:
    roles = (ROOT / "infra/bicep/modules/roles.bicep").read_text(encoding="utf-8")
    ids = set(re.findall(r"'([0-9a-f]{8}-[0-9a-f-]{27})'", roles))
    assert ids == {
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner (package container)
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",  # Storage Blob Data Contributor
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",  # Storage Queue Data Contributor
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",  # Storage Table Data Contributor
        "4633458b-17de-408a-b874-0445c86b69e6",  # Key Vault Secrets User
        "3913510d-42f4-4e42-8a64-420c390055eb",  # Monitoring Metrics Publisher
    }
    assert "scope: deploymentContainer" in roles.split("resource deploymentOwner")[1][:200]
    assert "subscription()" not in roles.replace("subscriptionResourceId", "")


def test_every_secret_the_app_needs_in_azure_is_created_when_absent() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import ensure_secrets

    settings = app_settings_values()
    # The signing keys named by the app settings are the ones the hook generates.
    keys = {settings["JWT_SIGNING_KEY_SECRET_NAME"], settings["MODEL_SIGNING_KEY_SECRET_NAME"]}
    assert keys == set(ensure_secrets.SIGNING_KEYS)
    # Each pre-defined user's password secret reaches the hook through a Bicep output.
    users = re.findall(r"password_secret: '([^']+)'", MAIN)
    assert users and "map(predefinedUsers, u => u.password_secret)" in MAIN
    assert ensure_secrets.wanted({"PREDEFINED_USER_SECRETS": ",".join(users)})[2:] == users


def app_settings_values() -> dict[str, str]:
    block = bicep_block("appSettings", "{")
    return dict(re.findall(r"^\s+([A-Za-z_][A-Za-z0-9_]*): '([^']*)'", block, re.M))


def test_azure_yaml_points_at_the_bicep() -> None:
    text = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    assert "path: infra/bicep" in text and "host: function" in text
    assert (ROOT / "infra/bicep/main.bicep").is_file()
