"""The audit log: who did what to which account, key, knowledge base or document, from where, and how it went."""
