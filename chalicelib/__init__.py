"""callqueue's program: everything the Chalice handlers in app.py delegate to."""
