"""Knowledge bases, their members and roles, and the rules of who may see what."""
