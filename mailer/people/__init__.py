"""People who sign in to the console: accounts, roles, one-time links, audit records."""
