"""The REST API's shared pieces (authentication, scopes, tenancy) and kb's own endpoints."""
