"""Faults: processes killed, the database restarted, Redis stopped; Memex must lose nothing and recover."""
