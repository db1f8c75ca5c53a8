"""The yardstick of make bench: a bare Flask hello, served under the same gunicorn configuration."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "hello"


@app.get("/healthz")
def healthz() -> str:
    return "ok"
