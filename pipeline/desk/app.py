"""The desk's web application (Starlette, server-rendered with Jinja2, autoescape on).

Every page but ``/login`` needs a session: a GET without one is sent to the login page, a POST
gets 401. Every form carries the session's CSRF token (the login form a double-submit one);
a POST without it gets 403. Cookies are HttpOnly and SameSite=Strict (Secure behind HTTPS).
Every response carries a Content-Security-Policy whose only script is the page's own
keyboard shortcuts (by nonce), so even a slip in escaping would not run injected script.

Decisions go through ``pipeline.review.decide`` and are committed at once, one transaction per
form (approve-all: every waiting output of the article, or none).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.desk.editors import (
    SESSION_HOURS,
    Login,
    current_login,
    log_in,
    log_out,
    same_token,
)
from pipeline.desk.marks import marked, phrases, word_diff
from pipeline.desk.queue import (
    QueueFilter,
    article_page,
    filter_choices,
    job_outputs,
    neighbours,
    queue_articles,
    queue_counts,
    queue_items,
)
from pipeline.errors import PipelineError
from pipeline.reports import usd_text
from pipeline.review import decide, find, history

COOKIE = "contentgen_desk"
LOGIN_COOKIE = "contentgen_desk_login"
MAX_FORM_BYTES = 256 * 1024
TEMPLATES = Path(__file__).with_name("templates")
ACTIONS = {"approve": "approved", "edit": "edited", "reject": "rejected"}
T = TypeVar("T")


class SecurityHeaders:
    """ASGI middleware: a per-request nonce for the page's script and style, and the headers
    that keep the desk out of frames, caches and other sites' referrers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["nonce"] = nonce

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["content-security-policy"] = (
                    f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
                )
                headers["x-frame-options"] = "DENY"
                headers["x-content-type-options"] = "nosniff"
                headers["referrer-policy"] = "no-referrer"
                headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["usd"] = usd_text
    env.filters["when"] = lambda d: "" if d is None else f"{d:%Y-%m-%d %H:%M} UTC"
    return env


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//host`` or a scheme) may follow a login."""
    text = (target or "").strip()
    if text.startswith("/") and not text.startswith("//") and "\\" not in text:
        return text
    return "/queue"


class Desk:
    """The desk's dependencies: the database's session factory and each task's parent (for
    regeneration); ``create_app`` builds the routes over one."""

    def __init__(self, sessions: sessionmaker[Session], follows: Mapping[str, str | None]):
        self.sessions = sessions
        self.follows = dict(follows)
        self.env = _environment()

    # -- plumbing --------------------------------------------------------------------------

    def _run(self, work: Callable[[Session], T]) -> T:
        with self.sessions() as session:
            return work(session)

    async def db(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` with a session, off the event loop."""
        return await run_in_threadpool(self._run, work)

    def render(
        self, request: Request, name: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """A template as a page (``nonce`` and ``login`` are always there)."""
        context.setdefault("login", None)
        html = self.env.get_template(name).render(nonce=request.state.nonce, **context)
        return HTMLResponse(html, status_code=status)

    async def login_of(self, request: Request) -> Login | None:
        """The request's session, if it has a valid one."""
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return None
        return await self.db(lambda s: current_login(s, cookie))

    async def form(self, request: Request) -> dict[str, str]:
        """A url-encoded form (the only kind the desk's pages send); any other body reads as
        an empty form, so it carries no CSRF token and is refused."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            return {}
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
            raise HTTPException(413, "the form is too large")
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "the form is too large")
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {key: values[0] for key, values in fields.items()}

    async def posted(self, request: Request) -> tuple[Login, dict[str, str]]:
        """The session and form of a POST: 401 without a session, 403 without its token."""
        login = await self.login_of(request)
        if login is None:
            raise HTTPException(401, "log in first")
        form = await self.form(request)
        if not same_token(form.get("csrf"), login.csrf_token):
            raise HTTPException(403, "the form's security token is missing or wrong; reload")
        return login, form

    @staticmethod
    def to_login(request: Request) -> RedirectResponse:
        """Where a page sends a browser without a session."""
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)

    # -- login -----------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        """GET /login: the token form, with a fresh double-submit token."""
        if await self.login_of(request) is not None:
            return RedirectResponse(_safe_next(request.query_params.get("next")), 303)
        return self._login_form(request, request.query_params.get("next"), None, 200)

    def _login_form(
        self, request: Request, target: str | None, error: str | None, status: int
    ) -> HTMLResponse:
        token = secrets.token_urlsafe(32)
        page = self.render(
            request, "login.html", status, csrf=token, next=_safe_next(target), error=error
        )
        page.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=900,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/login",
        )
        return page

    async def login(self, request: Request) -> Response:
        """POST /login: a token that is an editor's opens a session."""
        form = await self.form(request)
        if not same_token(form.get("csrf"), request.cookies.get(LOGIN_COOKIE) or ""):
            raise HTTPException(403, "the form's security token is missing or wrong; reload")
        token = form.get("token", "")
        opened = await self.db(lambda s: log_in(s, token))
        if opened is None:
            return self._login_form(request, form.get("next"), "That token is nobody's.", 401)
        cookie, _ = opened
        response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=SESSION_HOURS * 3600,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    async def logout(self, request: Request) -> Response:
        """POST /logout: ends the session."""
        await self.posted(request)
        cookie = request.cookies.get(COOKIE)
        await self.db(lambda s: log_out(s, cookie))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # -- pages -----------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        """GET /: the queue."""
        if await self.login_of(request) is None:
            return self.to_login(request)
        return RedirectResponse("/queue", status_code=303)

    async def queue(self, request: Request) -> Response:
        """GET /queue: what waits, flagged first, filtered, with counts."""
        login = await self.login_of(request)
        if login is None:
            return self.to_login(request)
        try:
            flt = QueueFilter.parse(request.query_params)
        except PipelineError as exc:
            raise HTTPException(400, str(exc)) from None

        def read(session: Session) -> dict[str, Any]:
            return {
                "items": queue_items(session, flt),
                "counts": queue_counts(session, flt),
                "choices": filter_choices(session),
            }

        data = await self.db(read)
        return self.render(request, "queue.html", login=login, flt=flt, q=flt.query(), **data)

    async def article(self, request: Request, error: str | None = None) -> Response:
        """GET /article/ID: the source beside every current output, with the forms."""
        login = await self.login_of(request)
        if login is None:
            return self.to_login(request)
        article_id = int(request.path_params["article_id"])
        flt = _filter_of(request.query_params.get("q") or request.url.query)

        def read(session: Session) -> dict[str, Any]:
            page = article_page(session, article_id)
            before, after = neighbours(queue_articles(session, flt), article_id)
            return {"page": page, "prev": before, "next": after}

        try:
            data = await self.db(read)
        except PipelineError as exc:
            raise HTTPException(404, str(exc)) from None
        shown = []
        for item in data["page"].outputs:
            output = item.output
            notes = phrases(output.checks)
            for grade in item.grades[-1:]:
                notes.update(phrases(grade.checks))
            text = output.final_text or ""
            changes = None
            if output.decision == "edited":
                changes = word_diff(output.output_text or "", output.final_text or "")
            shown.append({"item": item, "segments": marked(text, notes), "changes": changes})
        return self.render(
            request,
            "article.html",
            status=400 if error else 200,
            login=login,
            error=error,
            shown=shown,
            q=flt.query(),
            counts=await self.db(lambda s: queue_counts(s, flt)),
            **data,
        )

    async def output_history(self, request: Request) -> Response:
        """GET /output/ID/history: every version of the output's job and every decision."""
        login = await self.login_of(request)
        if login is None:
            return self.to_login(request)
        generation_id = int(request.path_params["generation_id"])

        def read(session: Session) -> list[tuple[Any, Any]]:
            return [
                (o, history(session, o.generation_id)) for o in job_outputs(session, generation_id)
            ]

        try:
            versions = await self.db(read)
        except PipelineError as exc:
            raise HTTPException(404, str(exc)) from None
        return self.render(
            request, "history.html", login=login, versions=versions, focus=generation_id
        )

    # -- decisions -------------------------------------------------------------------------

    async def decide(self, request: Request) -> Response:
        """POST /output/ID/decide: approve, edit or reject (with a note, maybe regenerate)."""
        login, form = await self.posted(request)
        generation_id = int(request.path_params["generation_id"])
        decision = ACTIONS.get(form.get("action", ""))
        if decision is None:
            raise HTTPException(400, "approve, edit or reject")

        def work(session: Session) -> int:
            output = find(session, str(generation_id))
            decide(
                session,
                output,
                decision,
                editor=login.editor,
                note=form.get("note"),
                edited_text=form.get("text") if decision == "edited" else None,
                regenerate_job=decision == "rejected" and form.get("regenerate") == "1",
                follows=self.follows,
            )
            session.commit()
            return output.article_id

        return await self._after(request, form, work, generation_id)

    async def approve_all(self, request: Request) -> Response:
        """POST /article/ID/approve-all: every waiting output of the article, in one go."""
        login, form = await self.posted(request)
        article_id = int(request.path_params["article_id"])

        def work(session: Session) -> int:
            page = article_page(session, article_id)
            if not page.waiting:
                raise _Nothing("nothing waits on this article")
            for item in page.waiting:
                decide(session, item.output, "approved", editor=login.editor)
            session.commit()
            return article_id

        return await self._after(request, form, work, None)

    async def _after(
        self,
        request: Request,
        form: Mapping[str, str],
        work: Callable[[Session], int],
        generation_id: int | None,
    ) -> Response:
        flt = _filter_of(form.get("q", ""))
        try:
            article_id = await self.db(work)
        except PipelineError as exc:
            article_id = int(form.get("article", "0") or 0)
            if not article_id:
                raise HTTPException(400, str(exc)) from None
            request.scope["path_params"] = {"article_id": article_id}
            request.scope["query_string"] = f"q={quote(flt.query())}".encode()
            return await self.article(request, error=str(exc))
        anchor = f"#out-{generation_id}" if generation_id else ""
        query = f"?q={quote(flt.query())}" if flt.query() else ""
        return RedirectResponse(f"/article/{article_id}{query}{anchor}", status_code=303)


class _Nothing(PipelineError):
    """Approve-all on an article where nothing waits."""


def _filter_of(query: str) -> QueueFilter:
    """A queue filter carried in a page's ``q`` (a bad one is ignored: the whole queue)."""
    try:
        return QueueFilter.parse({k: v[0] for k, v in parse_qs(query).items()})
    except PipelineError:
        return QueueFilter()


def create_app(sessions: sessionmaker[Session], follows: Mapping[str, str | None]) -> Starlette:
    """The desk as an ASGI application over the database of ``sessions``.

    ``follows`` maps each task to the task it follows (regenerating a rejected output
    re-queues it as ``contentgen jobs regenerate`` would).
    """
    desk = Desk(sessions, follows)

    async def error_page(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return desk.render(
            request, "error.html", exc.status_code, code=exc.status_code, detail=exc.detail
        )

    routes = [
        Route("/", desk.home, methods=["GET"]),
        Route("/login", desk.login_page, methods=["GET"]),
        Route("/login", desk.login, methods=["POST"]),
        Route("/logout", desk.logout, methods=["POST"]),
        Route("/queue", desk.queue, methods=["GET"]),
        Route("/article/{article_id:int}", desk.article, methods=["GET"]),
        Route("/article/{article_id:int}/approve-all", desk.approve_all, methods=["POST"]),
        Route("/output/{generation_id:int}/decide", desk.decide, methods=["POST"]),
        Route("/output/{generation_id:int}/history", desk.output_history, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: error_page})
    app.add_middleware(SecurityHeaders)
    return app
