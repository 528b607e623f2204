"""Local Azure Functions host for development and tests (never deployed).

Core Tools cannot be installed everywhere we work, so this package serves a FunctionApp's
HTTP routes, runs its timer schedules and polls its queues against Azurite.
"""

from devhost.azurite import Azurite, AzuriteError, start_azurite
from devhost.server import LocalHost, load_app
from devhost.settings import HostConfig, QueueOptions, load_local_settings

__all__ = [
    "Azurite",
    "AzuriteError",
    "HostConfig",
    "LocalHost",
    "QueueOptions",
    "load_app",
    "load_local_settings",
    "start_azurite",
]
