"""Request dependencies: the database session and who is asking (people, by role)."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Cookie, Depends, Header, HTTPException, Request
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from mizumori_server import security
from mizumori_server.clock import now
from mizumori_server.models import ROLES, ApiToken, User

SESSION_COOKIE = "mizumori_session"


def db(request: Request) -> Iterator[Session]:
    """A session for the request. A value the database cannot hold (an integer beyond its
    column, a NUL in text on PostgreSQL, a string over its column's length) is the
    client's error: 422, and the transaction is rolled back. The routers bound their inputs
    (inputs.py) so that this is a last line, not the first."""
    with request.app.state.sessions() as session:
        try:
            yield session
        except (DataError, OverflowError) as e:
            session.rollback()
            raise HTTPException(422, "a value is out of range for the database "
                                     f"({type(getattr(e, 'orig', e)).__name__})") from None


DB = Annotated[Session, Depends(db)]


def current_user(session: DB, authorization: Annotated[str | None, Header()] = None,
                 mizumori_session: Annotated[str | None, Cookie()] = None) -> User:
    token = None
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    elif mizumori_session:
        token = mizumori_session
    if not token:
        raise HTTPException(401, "log in or send a bearer token")
    row = session.query(ApiToken).filter_by(token_hash=security.token_hash(token)).first()
    if row is None or (row.expires_at is not None and row.expires_at < now()):
        raise HTTPException(401, "invalid or expired credentials")
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        raise HTTPException(401, "account disabled")
    return user


def role(*allowed: str):  # noqa: ANN201 - returns a FastAPI dependency
    """A dependency admitting only these roles (admin is always admitted)."""
    for r in allowed:
        assert r in ROLES, r

    def check(user: Annotated[User, Depends(current_user)]) -> User:
        if user.role != "admin" and user.role not in allowed:
            raise HTTPException(403, f"needs role {' or '.join(('admin',) + allowed)}")
        return user

    return check


Reader = Annotated[User, Depends(current_user)]
Admin = Annotated[User, Depends(role("admin"))]
Operator = Annotated[User, Depends(role("operator"))]
Technician = Annotated[User, Depends(role("technician", "operator"))]


def open_data_reader(request: Request, session: DB,
                     authorization: Annotated[str | None, Header()] = None,
                     mizumori_session: Annotated[str | None, Cookie()] = None) -> User | None:
    """The open-data endpoints (/ogc, /open): anyone when MIZUMORI_OPEN_DATA is on,
    otherwise any logged-in person."""
    if request.app.state.settings.open_data:
        return None
    return current_user(session, authorization, mizumori_session)


OpenData = Annotated[User | None, Depends(open_data_reader)]
