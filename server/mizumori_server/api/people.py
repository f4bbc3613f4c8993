"""Login, sessions, personal API tokens and user management."""

from typing import Literal

from fastapi import HTTPException, Request, Response
from pydantic import Field
from sqlalchemy import delete, func, select

from mizumori_server import prune, security
from mizumori_server.clock import now
from mizumori_server.db import rowcount
from mizumori_server.deps import DB, SESSION_COOKIE, Admin, Reader
from mizumori_server.inputs import Id, Input, bounded_router
from mizumori_server.models import ApiToken, LoginAttempt, User

router = bounded_router("/api", "people")
Role = Literal["admin", "operator", "technician", "viewer"]


class Login(Input):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class NewUser(Input):
    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=security.MIN_PASSWORD,
                          max_length=security.MAX_PASSWORD)
    role: Role


class UserChange(Input):
    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(None, min_length=security.MIN_PASSWORD,
                                 max_length=security.MAX_PASSWORD)


class NewToken(Input):
    name: str = Field(min_length=1, max_length=100)
    days: int | None = Field(None, ge=1, le=3650)


def user_json(u: User) -> dict[str, object]:
    return {"id": u.id, "username": u.username, "role": u.role, "disabled": u.disabled}


@router.post("/login")
def login(body: Login, request: Request, response: Response, session: DB) -> dict[str, object]:
    """Log in: a session cookie for the dashboard, and the same token in the body."""
    settings = request.app.state.settings
    t = now()
    client = request.client.host if request.client else "unknown"
    keys = (f"user:{body.username}", f"addr:{client}")
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < t - 60))
    # Each failure is one row per key: the limit is per user name and per address, each
    # counted on its own (docs/server.md: 10 failures in a minute, the 11th attempt is 429).
    # This attempt is recorded (committed) before anything is counted, so attempts sent all
    # at once count each other; it is taken back if the password was right.
    mine = [LoginAttempt(key=k, at=t) for k in keys]
    session.add_all(mine)
    session.commit()
    taken_back = delete(LoginAttempt).where(LoginAttempt.id.in_([m.id for m in mine]))
    recent = max((n for _, n in session.execute(
        select(LoginAttempt.key, func.count()).where(LoginAttempt.key.in_(keys),
                                                     LoginAttempt.at >= t - 60)
        .group_by(LoginAttempt.key))), default=0)
    if recent > settings.login_attempts_per_minute:
        session.execute(taken_back)  # a refused attempt is not a failure of its own
        session.commit()
        raise HTTPException(429, "too many failed logins, wait a minute",
                            headers={"Retry-After": "60"})
    user = session.scalars(select(User).where(User.username == body.username)).first()
    # The hash runs whether the user exists or not: the answer takes as long either way.
    stored = user.password_hash if user is not None else security.dummy_hash()
    matches = security.verify_password(stored, body.password)
    if user is None or user.disabled or not matches:
        raise HTTPException(401, "wrong username or password")  # the attempt stays counted
    session.execute(taken_back)
    token = security.new_token()
    hours = settings.session_hours
    session.add(ApiToken(user_id=user.id, kind="session", name="login",
                         token_hash=security.token_hash(token), created_at=t,
                         expires_at=t + hours * 3600))
    session.commit()
    response.set_cookie(SESSION_COOKIE, token, max_age=hours * 3600, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return {"token": token, "user": user_json(user)}


@router.post("/logout")
def logout(request: Request, response: Response, session: DB, user: Reader) -> dict[str, str]:
    token = request.cookies.get(SESSION_COOKIE) or \
        request.headers.get("authorization", "")[7:].strip()
    session.execute(delete(ApiToken).where(ApiToken.token_hash == security.token_hash(token),
                                           ApiToken.kind == "session"))
    session.commit()
    response.delete_cookie(SESSION_COOKIE)
    return {"status": "logged out"}


@router.get("/me")
def me(user: Reader) -> dict[str, object]:
    return user_json(user)


@router.post("/tokens", status_code=201)
def create_token(body: NewToken, session: DB, user: Reader,
                 request: Request) -> dict[str, object]:
    """A personal API token for scripts. Shown once; only its hash is kept. It expires after
    `days`, or after the server's MIZUMORI_TOKEN_DAYS (365) when none is given."""
    token = security.new_token()
    t = now()
    row = ApiToken(user_id=user.id, kind="token", name=body.name,
                   token_hash=security.token_hash(token), created_at=t,
                   expires_at=prune.token_expires_at(request.app.state.settings, body.days, t))
    session.add(row)
    session.commit()
    return {"id": row.id, "name": row.name, "token": token, "expires_at": row.expires_at}


@router.get("/tokens")
def list_tokens(session: DB, user: Reader) -> list[dict[str, object]]:
    rows = session.scalars(select(ApiToken).where(ApiToken.user_id == user.id,
                                                  ApiToken.kind == "token"))
    return [{"id": r.id, "name": r.name, "created_at": r.created_at,
             "expires_at": r.expires_at} for r in rows]


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: Id, session: DB, user: Reader) -> dict[str, str]:
    n = rowcount(session.execute(delete(ApiToken).where(ApiToken.id == token_id,
                                                        ApiToken.user_id == user.id)))
    session.commit()
    if not n:
        raise HTTPException(404, "no such token")
    return {"status": "revoked"}


@router.get("/users")
def list_users(session: DB, _: Admin) -> list[dict[str, object]]:
    return [user_json(u) for u in session.scalars(select(User).order_by(User.username))]


@router.post("/users", status_code=201)
def create_user(body: NewUser, session: DB, _: Admin) -> dict[str, object]:
    if session.scalars(select(User).where(User.username == body.username)).first():
        raise HTTPException(409, f"user {body.username} exists")
    try:
        user = create(session, body.username, body.password, body.role)
    except security.WeakPassword as e:
        raise HTTPException(422, str(e)) from None
    session.commit()
    return user_json(user)


@router.patch("/users/{user_id}")
def change_user(user_id: Id, body: UserChange, session: DB, _: Admin) -> dict[str, object]:
    user = session.get(User, user_id)
    if user is None:
        raise HTTPException(404, "no such user")
    if body.password is not None:  # refused: nothing changes
        try:
            security.check_password(body.password, user.username)
        except security.WeakPassword as e:
            raise HTTPException(422, str(e)) from None
    if body.role is not None:
        user.role = body.role
    if body.disabled is not None:
        user.disabled = body.disabled
        if body.disabled:  # end their sessions and tokens at once
            session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    if body.password is not None:
        user.password_hash = security.hash_password(body.password)
    session.commit()
    return user_json(user)


def create(session: DB, username: str, password: str, role: str) -> User:
    """A new user; the API and `mizumori user create` both come here, so the password
    policy (security.check_password) holds for both: WeakPassword if it refuses."""
    security.check_password(password, username)
    user = User(username=username, password_hash=security.hash_password(password), role=role,
                disabled=False, created_at=now())
    session.add(user)
    session.flush()
    return user
