"""The command line behind the nox sessions: one table of commands (commands.py), each
handler thin (handlers.py), the parser built from the table (main.py)."""
