"""``contentgen desk``: serve the review desk, and manage the editors who may log in to it.

The desk is ``pipeline.desk``; this module parses options, prints, and starts uvicorn."""

from __future__ import annotations

import ipaddress
import socket

import typer
from rich.table import Table

from pipeline.cli.common import (
    JSON_OPTION,
    check_task_names,
    console,
    database_errors,
    handle_errors,
    open_db,
    print_json,
    say,
)
from pipeline.desk import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    add_editor,
    create_app,
    list_editors,
    remove_editor,
)
from pipeline.errors import InputError
from pipeline.settings import get_settings

desk_app = typer.Typer(
    help="The review desk: a web page where editors approve, edit or reject the night's "
    "texts. Without a subcommand it serves the desk (on 127.0.0.1 unless told otherwise).\n\n"
    "Example: `contentgen desk editors add ana`, then `contentgen desk`",
    invoke_without_command=True,
)
editors_app = typer.Typer(
    help="Who may log in to the desk: add (prints a login token once), list, remove.\n\n"
    "Example: `contentgen desk editors add ana`",
    no_args_is_help=True,
)
desk_app.add_typer(editors_app, name="editors")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise InputError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass another --port"
            ) from None


@desk_app.callback()
@handle_errors
def serve(
    ctx: typer.Context,
    host: str = typer.Option(
        DEFAULT_HOST,
        "--host",
        help="Address to listen on. Anything but loopback should sit behind the newsroom's "
        "HTTPS proxy.",
    ),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="Port to listen on."),
) -> None:
    """Serve the review desk until Ctrl+C.

    Editors log in with the token `contentgen desk editors add NAME` printed for them. Set
    CONTENTGEN_DESK_URL to the address editors use, so the nightly run links to its queue.

    Example: `contentgen desk --port 8765`
    """
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn  # the web server is loaded only when serving

    settings = get_settings()
    profiles = check_task_names(settings, [])
    engine, sessions = open_db(settings)
    with sessions() as session, database_errors():
        editors = list_editors(session)
    _check_port(host, port)
    app = create_app(sessions, {task: p.follows for task, p in profiles.items()})
    shown = f"[{host}]" if ":" in host else host
    say(f"Review desk on http://{shown}:{port} (Ctrl+C stops)")
    if not is_loopback(host):
        say(
            f"note: listening on {host}, not loopback: the desk speaks plain HTTP, so it should "
            "sit behind the newsroom's HTTPS proxy (which sends X-Forwarded-Proto)"
        )
    if not editors:
        say("note: no editors yet: add one with `contentgen desk editors add NAME`")
    try:
        uvicorn.run(app, host=host.strip("[]"), port=port, log_level="warning", proxy_headers=True)
    finally:
        engine.dispose()


@editors_app.command("add")
@handle_errors
def add_cmd(
    name: str = typer.Argument(..., help="The editor's name, as decisions will record it."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Add an editor and print their login token, once: only its hash is stored.

    Example: `contentgen desk editors add "Ana Lima"`
    """
    engine, sessions = open_db(get_settings())
    try:
        with sessions() as session, database_errors():
            token = add_editor(session, name)
    finally:
        engine.dispose()
    if json_out:
        print_json({"name": name.strip(), "token": token})
        return
    say(f"editor {name.strip()} added. Their login token (shown only this once):")
    say(token)
    say("Give it to them privately; they paste it on the desk's login page.")


@editors_app.command("list")
@handle_errors
def list_cmd(json_out: bool = JSON_OPTION) -> None:
    """List the editors, when each was added and how many sessions they have open.

    Example: `contentgen desk editors list`
    """
    engine, sessions = open_db(get_settings())
    try:
        with sessions() as session, database_errors():
            editors = list_editors(session)
    finally:
        engine.dispose()
    if json_out:
        print_json([e.as_dict() for e in editors])
        return
    if not editors:
        say("no editors yet: `contentgen desk editors add NAME`")
        return
    table = Table("editor", "added", "open sessions")
    for e in editors:
        table.add_row(e.name, f"{e.created_at:%Y-%m-%d %H:%M} UTC", str(e.sessions))
    console.print(table)


@editors_app.command("remove")
@handle_errors
def remove_cmd(
    name: str = typer.Argument(..., help="The editor to remove."),
) -> None:
    """Remove an editor: their token stops working and their sessions end at once. Their
    past decisions stay.

    Example: `contentgen desk editors remove ana`
    """
    engine, sessions = open_db(get_settings())
    try:
        with sessions() as session, database_errors():
            remove_editor(session, name)
    finally:
        engine.dispose()
    say(f"editor {name.strip()} removed; their sessions are closed")


def register(app: typer.Typer) -> None:
    """Add ``desk`` to ``app``."""
    app.add_typer(desk_app, name="desk")
