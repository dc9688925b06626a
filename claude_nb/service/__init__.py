"""Server-side state: what the Jupyter server keeps between requests."""
