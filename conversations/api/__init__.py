"""The HTTP API under /api/ (DESIGN §5): thin views that parse, call one action and serialize."""
