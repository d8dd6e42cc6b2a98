"""MCP: Memex's tools (`search`, `ask`, `get_document`, `list_knowledge_bases`) for any MCP client.

One tool set (server.py) over a Backend (backend.py): local services as an actor (local.py) or a Memex server's
HTTP API (remote.py). `memex mcp` serves it over stdio, and the API app over streamable HTTP at /mcp (http.py).
"""
