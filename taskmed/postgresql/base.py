"""Django's PostgreSQL backend, with a circuit breaker on getting a connection (realtime.db.breaker).

With PostgreSQL away, each request would wait the pool's DB_POOL_TIMEOUT for a connection before its
503, holding a worker thread all that while. Once a connection could not be had and PostgreSQL does not
answer a probe either, the breaker opens: every request is refused at once (a 503 by
conversations.unavailable) while a background probe looks for PostgreSQL every second; when it answers,
the breaker closes and the pool serves again, with no restart."""

from django.db.backends.postgresql import base

from realtime.db import breaker

PROBE_TIMEOUT_SECONDS = 2
# Options of Django's connection that psycopg.connect itself does not take.
NOT_FOR_CONNECT = ("cursor_factory", "context", "prepare_threshold", "client_encoding", "server_side_binding")


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        breaker.check()
        try:
            return super().get_new_connection(conn_params)
        except Exception:
            breaker.failed(self.reach)
            raise

    def reach(self) -> bool:
        """Whether PostgreSQL answers a connection made outside the pool. One at its connection limit
        answers too ("too many clients"): it is there, and the pool's own connections will do."""
        params = {k: v for k, v in self.get_connection_params().items() if k not in NOT_FOR_CONNECT}
        params["connect_timeout"] = min(
            int(params.get("connect_timeout") or PROBE_TIMEOUT_SECONDS), PROBE_TIMEOUT_SECONDS
        )
        try:
            self.Database.connect(**params).close()
        except self.Database.errors.TooManyConnections:
            return True
        except self.Database.OperationalError:
            return False
        return True
