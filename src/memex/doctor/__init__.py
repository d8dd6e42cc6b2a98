"""`memex doctor`: a preflight and security audit of the real installation, as findings with a severity."""
