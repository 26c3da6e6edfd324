"""The deploy rehearsal: blue-green behind HAProxy with automatic rollback, the alerts that
page people used as the rollback signal, and secret rotation under load."""
