"""The application: plain Python services; only shared.http knows about Azure Functions."""
