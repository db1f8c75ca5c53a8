"""`flask --app wsgi oidc …`: register relying parties, rotate the signing key."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from portal.cli import _run
from portal.oidc import clients, keys

oidc_cli = AppGroup("oidc", help="The OpenID Connect provider: clients and signing keys.")
client_cli = AppGroup("client", help="Register, list and remove relying parties.")
oidc_cli.add_command(client_cli)


def init_app(app: Flask) -> None:
    app.cli.add_command(oidc_cli)


@client_cli.command("add")
@click.argument("name")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="exact callback URL (repeatable)")
@click.option("--post-logout-redirect-uri", "logout_uris", multiple=True, help="where /oauth/logout may return")
@click.option("--public", is_flag=True, help="no secret (a browser or mobile app): PKCE S256 and nonce required")
@click.option("--resource-server", is_flag=True, help="may introspect every token (e.g. Dovecot)")
def client_add(name: str, redirect_uris: tuple, logout_uris: tuple, public: bool, resource_server: bool) -> None:
    client, secret = _run(lambda: clients.add(name, list(redirect_uris), list(logout_uris), public, resource_server))
    click.echo(f"client_id: {client.client_id}")
    if secret:
        click.echo(f"client_secret: {secret}")
        click.echo("The secret is shown only now; store it in the client's configuration.", err=True)


@client_cli.command("list")
def client_list() -> None:
    for client in _run(clients.listing):
        kind = "resource server" if client.resource_server else ("public" if client.public else "confidential")
        uris = " ".join(clients.redirect_uris(client)) or "-"
        click.echo(f"{client.client_id}\t{client.name}\t{kind}\t{uris}")


@client_cli.command("remove")
@click.argument("client_id")
def client_remove(client_id: str) -> None:
    if not _run(lambda: clients.remove(client_id)):
        raise click.ClickException(f"no client {client_id}")
    click.echo(f"removed {client_id} and its tokens")


@oidc_cli.command("rotate-keys")
def rotate_keys() -> None:
    kid, published = keys.rotate()
    click.echo(f"new signing key: {kid}")
    click.echo(f"still published: {' '.join(published) or '-'}")
