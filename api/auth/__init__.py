"""Authentication: who the caller is (passwords, tokens, the request middleware)."""
