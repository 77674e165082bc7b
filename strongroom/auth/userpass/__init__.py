"""The ``userpass`` auth method: people (or break-glass accounts) log in with a username and password."""
