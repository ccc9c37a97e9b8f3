"""Server-rendered pages of the inbox."""
