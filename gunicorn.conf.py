"""gunicorn settings for the portal (`gunicorn -c gunicorn.conf.py wsgi:app`; `make run` uses this file).

Threads, not one request per process: a request waiting for WeChat, SMTP (later SMS, LDAP) or a busy
database holds one thread, not a whole worker, so other users' logins go on (DESIGN §4.16). Every
outbound call has its own timeout of a few seconds, so a thread is never held for long either.

Overrides from the environment: GUNICORN_BIND, GUNICORN_WORKERS, GUNICORN_THREADS, GUNICORN_TIMEOUT,
GUNICORN_ACCESS_LOG (a file, "-" for stdout, empty for none).
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
# Processes use the cores (argon2 and page rendering are CPU work); threads cover waiting on the network.
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
# A request still running after this many seconds is a bug (every wait inside is bounded well below it).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 10
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # "-": to stdout; empty: none
# No runtime control socket ($HOME/.gunicorn/gunicorn.ctl): several instances on one host would share
# that one path, and the portal is managed by its service manager's signals.
control_socket_disable = True


# /metrics across workers: with PROMETHEUS_MULTIPROC_DIR set (an empty directory the portal's user owns),
# each worker writes its counters there and /metrics adds them up. Old files from the last start go.
def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
