"""`memex db maintain`: ANALYZE after heavy churn, and a REINDEX CONCURRENTLY of an HNSW index grown far past its rows."""
