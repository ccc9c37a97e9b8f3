"""The conversation domain: clinics, contacts, conversations, messages and their write and read paths."""
