"""Editors and their sessions on the desk: login tokens shown once and stored as SHA-256, and
server-side sessions (a random cookie, stored hashed, with the CSRF token its forms carry).

Tokens are 32 random bytes, so one SHA-256 is enough: there is nothing to guess a password
from. A session ends when it expires, when its editor logs out, or when the editor is removed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline.db import DeskSession, Editor, utcnow
from pipeline.errors import InputError

TOKEN_PREFIX = "cgdesk_"
SESSION_HOURS = 12
MAX_NAME = 128


def digest(secret: str) -> str:
    """The SHA-256 (hex) a token or cookie is stored as."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _clean_name(name: str) -> str:
    text = name.strip()
    if not text:
        raise InputError("an editor needs a name")
    if len(text) > MAX_NAME:
        raise InputError(f"an editor's name has at most {MAX_NAME} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise InputError("an editor's name cannot hold control characters")
    return text


@dataclass(frozen=True)
class EditorInfo:
    """An editor as ``contentgen desk editors list`` shows them."""

    name: str
    created_at: dt.datetime
    sessions: int

    def as_dict(self) -> dict[str, object]:
        """JSON-ready data."""
        return {
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "sessions": self.sessions,
        }


def add_editor(session: Session, name: str) -> str:
    """Add an editor and return their login token (shown once; only its hash is kept).
    Commits."""
    clean = _clean_name(name)
    if session.scalar(select(Editor.id).where(Editor.name == clean)) is not None:
        raise InputError(
            f"editor {clean!r} exists; `contentgen desk editors remove {clean}` first to give "
            "them a new token"
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(Editor(name=clean, token_hash=digest(token), created_at=utcnow()))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise InputError(f"editor {clean!r} exists") from None
    return token


def list_editors(session: Session, now: dt.datetime | None = None) -> list[EditorInfo]:
    """Every editor, by name, with their sessions still open."""
    moment = now or utcnow()
    open_sessions = (
        select(DeskSession.editor_id, func.count().label("n"))
        .where(DeskSession.expires_at > moment)
        .group_by(DeskSession.editor_id)
        .subquery()
    )
    rows = session.execute(
        select(Editor.name, Editor.created_at, open_sessions.c.n)
        .outerjoin(open_sessions, open_sessions.c.editor_id == Editor.id)
        .order_by(Editor.name)
    )
    return [EditorInfo(name, created, int(n or 0)) for name, created, n in rows]


def remove_editor(session: Session, name: str) -> None:
    """Remove an editor and end their sessions (their past decisions stay). Commits."""
    clean = name.strip()
    editor_id = session.scalar(select(Editor.id).where(Editor.name == clean))
    if editor_id is None:
        raise InputError(f"no editor {clean!r} (see `contentgen desk editors list`)")
    session.execute(delete(DeskSession).where(DeskSession.editor_id == editor_id))
    session.execute(delete(Editor).where(Editor.id == editor_id))
    session.commit()


@dataclass(frozen=True)
class Login:
    """A logged-in browser: who, and the CSRF token its forms must carry."""

    editor: str
    csrf_token: str
    session_id: int


def log_in(session: Session, token: str, *, hours: int = SESSION_HOURS) -> tuple[str, Login] | None:
    """Open a session for the editor whose token this is: the cookie value and the login.
    None when the token is nobody's. Commits (and drops expired sessions)."""
    text = token.strip()
    if not text:
        return None
    row = session.execute(
        select(Editor.id, Editor.name).where(Editor.token_hash == digest(text))
    ).first()
    if row is None:
        return None
    editor_id, name = row
    now = utcnow()
    session.execute(delete(DeskSession).where(DeskSession.expires_at <= now))
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    record = DeskSession(
        editor_id=editor_id,
        token_hash=digest(cookie),
        csrf_token=csrf,
        created_at=now,
        expires_at=now + dt.timedelta(hours=hours),
    )
    session.add(record)
    session.commit()
    return cookie, Login(name, csrf, record.id)


def current_login(session: Session, cookie: str | None) -> Login | None:
    """The login a session cookie stands for; None when missing, unknown or expired."""
    if not cookie:
        return None
    row = session.execute(
        select(Editor.name, DeskSession.csrf_token, DeskSession.id)
        .join(Editor, Editor.id == DeskSession.editor_id)
        .where(DeskSession.token_hash == digest(cookie), DeskSession.expires_at > utcnow())
    ).first()
    return None if row is None else Login(*row)


def log_out(session: Session, cookie: str | None) -> None:
    """End the session of ``cookie`` (if any). Commits."""
    if cookie:
        session.execute(delete(DeskSession).where(DeskSession.token_hash == digest(cookie)))
        session.commit()


def same_token(given: str | None, expected: str) -> bool:
    """Whether a form's CSRF token is the session's (compared in constant time)."""
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())
