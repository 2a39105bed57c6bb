"""Upload tokens: only a hash is stored; the member comes from the token.

A member's token writes only that member's data; an admin token (the county's
GIS team) may act for any member. Tokens are shown once, at creation.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from gdi.files import now_iso
from gdi.ingest.territory import check_member_key
from gdi.server import service_db

PREFIX = "gdi_"


@dataclass(frozen=True)
class Token:
    id: str
    member: str
    name: str | None
    admin: bool
    created: str
    revoked: str | None

    def may_act_for(self, member: str) -> bool:
        return self.admin or member == self.member


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create(member: str, name: str | None = None, admin: bool = False) -> tuple[Token, str]:
    """A new token; returns it and its secret (shown once, never stored)."""
    member = check_member_key(member)
    tid = secrets.token_hex(4)
    secret = f"{PREFIX}{tid}_{secrets.token_urlsafe(32)}"
    token = Token(tid, member, name, admin, now_iso(), None)
    conn = service_db.connect()
    try:
        conn.execute("INSERT INTO tokens VALUES (?,?,?,?,?,?,NULL)",
                     (tid, _hash(secret), member, name, int(admin), token.created))
    finally:
        conn.close()
    return token, secret


def list_tokens() -> list[Token]:
    conn = service_db.connect()
    try:
        rows = conn.execute("SELECT id, member, name, admin, created, revoked FROM tokens ORDER BY created").fetchall()
    finally:
        conn.close()
    return [Token(r["id"], r["member"], r["name"], bool(r["admin"]), r["created"], r["revoked"]) for r in rows]


def revoke(tid: str) -> bool:
    conn = service_db.connect()
    try:
        n = conn.execute("UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL", (now_iso(), tid)).rowcount
    finally:
        conn.close()
    return n > 0


def verify(secret: str | None) -> Token | None:
    """The token a secret belongs to, if it exists and is not revoked."""
    if not secret or not secret.startswith(PREFIX):
        return None
    conn = service_db.connect()
    try:
        row = conn.execute("SELECT id, hash, member, name, admin, created, revoked FROM tokens WHERE hash = ?",
                           (_hash(secret),)).fetchone()
    finally:
        conn.close()
    if row is None or row["revoked"] or not hmac.compare_digest(row["hash"], _hash(secret)):
        return None
    return Token(row["id"], row["member"], row["name"], bool(row["admin"]), row["created"], row["revoked"])
