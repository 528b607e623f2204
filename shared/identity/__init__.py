"""Users, roles, credentials and sign-in."""
