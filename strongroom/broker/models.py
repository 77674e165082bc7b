"""A request for privileged access, the people involved, and its life-cycle states."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PENDING = "pending"
APPROVED = "approved"
FETCHED = "fetched"
DENIED = "denied"
EXPIRED = "expired"
CANCELLED = "cancelled"
REVOKED = "revoked"
STATES = (PENDING, APPROVED, FETCHED, DENIED, EXPIRED, CANCELLED, REVOKED)


@dataclass(frozen=True)
class Identity:
    """An IdP account as the company IdP asserts it; (issuer, subject) is the account, the rest is display and policy.

    ``person`` is the configured person claim (an HR id shared by all of one human's accounts): with it, two accounts
    of one human are recognised as the same person even when their subjects and emails differ.
    """

    issuer: str
    subject: str
    name: str = ""
    email: str = ""
    groups: tuple[str, ...] = ()
    person: str = ""

    def same_person(self, other: dict[str, Any] | Identity) -> bool:
        o = other if isinstance(other, dict) else asdict(other)
        if (self.issuer, self.subject) == (o.get("issuer"), o.get("subject")):
            return True
        if self.person and self.person == str(o.get("person") or ""):
            return True
        # A second account carrying the same mailbox is the same human, whatever its subject says.
        mine, theirs = self.email.strip().lower(), str(o.get("email") or "").strip().lower()
        return bool(mine) and mine == theirs

    def ref(self) -> dict[str, str]:
        ref = {"issuer": self.issuer, "subject": self.subject, "name": self.name, "email": self.email}
        if self.person:
            ref["person"] = self.person
        return ref


@dataclass
class Review:
    reviewer: dict[str, str]
    decision: str  # "approve" | "deny" | "acknowledge"
    comment: str
    at: float


@dataclass
class MpaRequest:
    id: str
    kind: str
    requester: dict[str, str]
    reason: str
    duration: int
    state: str
    created_at: float
    request_expires_at: float
    approvals_needed: int
    approved_at: float | None = None
    access_expires_at: float | None = None
    fetched_at: float | None = None
    ended_at: float | None = None
    break_glass: bool = False
    acknowledged_by: dict[str, str] | None = None
    reminded_at: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    credential_ref: dict[str, Any] | None = None
    reviews: list[Review] = field(default_factory=list)
    version: int = 0

    @property
    def approvers(self) -> list[dict[str, str]]:
        return [r.reviewer for r in self.reviews if r.decision == "approve"]

    @property
    def needs_acknowledgement(self) -> bool:
        return self.break_glass and self.acknowledged_by is None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["approvers"] = [a.get("email") or a.get("name") or a.get("subject") for a in self.approvers]
        d["needs_acknowledgement"] = self.needs_acknowledgement
        d.pop("credential_ref")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MpaRequest:
        d = dict(d)
        d.pop("approvers", None)
        d.pop("needs_acknowledgement", None)
        d["reviews"] = [Review(**r) for r in d.get("reviews", [])]
        return cls(**d)
