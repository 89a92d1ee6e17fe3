"""Token ordering: per subject, the newest iat seen and the roles of the token that carried it,
kept in the Airflow metadata database (table ``runtime_token_watermark``, created on first use),
so the order holds across webserver restarts and between gunicorn workers.

The rule, for a verified token of a subject (``admit``):
  no token seen yet, or iat newer than the stored one   NEWER: stored, the token is used
  iat equal to the stored one, same roles               SAME: the token is used
  iat equal to the stored one, other roles              CONFLICT: refused, and that iat is
                                                        poisoned (no token of it is used again)
  iat older than the stored one                         OLDER: refused
The write is made in the caller's database session and committed with the user's role update,
so two workers cannot interleave "admit" and "set the roles" (PostgreSQL holds the row lock,
sqlite the database's write lock, until the commit).
"""

import threading

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

NEWER, SAME, CONFLICT, OLDER = "newer", "same", "conflict", "older"
POISONED = "conflict"  # stored in place of a roles fingerprint (those are 32 hex digits)
TABLE = sa.Table(
    "runtime_token_watermark", sa.MetaData(),
    sa.Column("subject", sa.String(256), primary_key=True),
    sa.Column("iat", sa.Float, nullable=False),  # (double precision on sqlite and PostgreSQL)
    sa.Column("roles", sa.String(64), nullable=False),
)
_created = set()
_create_lock = threading.Lock()


def ensure_table(engine):
    """Create the table if missing (once per process; another worker may create it too)."""
    key = str(engine.url)
    with _create_lock:
        if key in _created:
            return
        try:
            TABLE.create(engine, checkfirst=True)
        except DBAPIError:  # created meanwhile by another process: the second check sees it
            TABLE.create(engine, checkfirst=True)
        _created.add(key)


def admit(session, subject: str, iat: float, roles: str) -> str:
    """Compare a token (iat, roles fingerprint) with the subject's watermark and move the
    watermark forward when it is newer. Uncommitted: the caller commits (or rolls back)."""
    ensure_table(session.get_bind())
    iat = float(iat)
    for _ in range(5):
        moved = session.execute(
            TABLE.update().where(sa.and_(TABLE.c.subject == subject, TABLE.c.iat < iat))
            .values(iat=iat, roles=roles)).rowcount
        if moved:
            return NEWER
        row = session.execute(sa.select([TABLE.c.iat, TABLE.c.roles])
                              .where(TABLE.c.subject == subject)).first()
        if row is None:
            try:
                with session.begin_nested():  # (a savepoint: a lost race undoes only this)
                    session.execute(TABLE.insert().values(subject=subject, iat=iat,
                                                          roles=roles))
                return NEWER
            except IntegrityError:
                continue  # another worker stored this subject first: compare with it
        if row.iat > iat:
            return OLDER
        if row.iat == iat:
            if row.roles == roles:
                return SAME
            session.execute(TABLE.update().where(sa.and_(
                TABLE.c.subject == subject, TABLE.c.iat == iat)).values(roles=POISONED))
            return CONFLICT
        # (row.iat < iat: moved by a concurrent writer between the statements; again)
    raise RuntimeError(f"the watermark of {subject!r} keeps moving")
