"""Chat: grounded, streamed answers with checked citations, over the knowledge bases a caller may read."""
