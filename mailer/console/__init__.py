"""The marketing console: server-rendered pages under /console for people with roles, on
the same service functions as the API."""
