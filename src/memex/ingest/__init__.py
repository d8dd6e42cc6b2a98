"""Turning files into chunks: parsers, chunking and the indexing pipeline."""
