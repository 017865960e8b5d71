"""Where the outside world enters: one module per kind of external data, each cached."""
