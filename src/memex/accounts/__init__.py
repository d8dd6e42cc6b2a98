"""Accounts: users, login sessions and API keys."""
