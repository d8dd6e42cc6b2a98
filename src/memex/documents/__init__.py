"""Documents, their original bytes (blobs) and their chunks."""
