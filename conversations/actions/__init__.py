"""The write path (DESIGN §3): every change of state goes through one function here."""
