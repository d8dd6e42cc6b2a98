"""Hybrid retrieval: vector and full-text search fused by reciprocal rank."""
