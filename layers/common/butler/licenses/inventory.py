"""The inventory: every professional and analyzer allocation, joined to just the user records the policy reads.

Request budget (it does not grow with the number of allocations, and not per user): one ``/full`` read per
access type; the owners of the allocations past their threshold (the only ones whose protection rules are read)
by id, up to ``USER_FILTER_MAX`` in one request, otherwise all users in ``/user/table`` pages of
``Butler.qrs.pageSize`` that keep only those (100,000 users are five pages). Owners are joined by their QRS id
only: an owner without a GUID id is never released (see the policy), so it needs no record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from butler.config import LICENSE_TYPES
from butler.licenses.model import LicenseSource
from butler.qrs.models import Allocation, LicenseType, User

USER_FILTER_MAX = 50  # ids in one filter: about 2.5 kB of query string, well within QRS's URL limit


@dataclass(frozen=True)
class Inventory:
    allocations: dict[LicenseType, list[Allocation]]
    users_by_id: dict[str, User] = field(default_factory=dict)

    @classmethod
    def join(cls, allocations: dict[LicenseType, list[Allocation]], users: Iterable[User]) -> Inventory:
        return cls(allocations, {user.id: user for user in users})

    def user_of(self, allocation: Allocation) -> User | None:
        """The owner's record, by QRS user id."""
        owner = allocation.user
        return self.users_by_id.get(owner.id) if owner is not None and owner.id else None

    def pairs(self) -> Iterator[tuple[Allocation, User | None]]:
        for license_type in LICENSE_TYPES:
            for allocation in self.allocations.get(license_type, []):
                yield allocation, self.user_of(allocation)

    def count(self, license_type: LicenseType) -> int:
        return len(self.allocations.get(license_type, []))


def fetch_inventory(source: LicenseSource, needs_user: Callable[[Allocation], bool]) -> Inventory:
    """All allocations of both types, and the users of those for which ``needs_user`` holds."""
    return inventory_of(source, {t: source.allocations(t) for t in LICENSE_TYPES}, needs_user)


def inventory_of(source: LicenseSource, allocations: dict[LicenseType, list[Allocation]],
                 needs_user: Callable[[Allocation], bool], *, with_email: bool = False) -> Inventory:
    """The allocations already read, joined to the users of those for which ``needs_user`` holds."""
    owners = {a.user.id for listed in allocations.values() for a in listed
              if needs_user(a) and a.user is not None and a.user.id}
    return Inventory.join(allocations, fetch_users(source, owners, with_email=with_email))


def fetch_users(source: LicenseSource, ids: set[str], *, with_email: bool = False) -> list[User]:
    """A few users by id (50 a request); more in full pages that keep only those (never one per user).
    ``with_email`` adds the ``email`` attribute to the same requests (only when users are mailed)."""
    if not ids:
        return []
    if len(ids) > USER_FILTER_MAX:
        return source.users(only_ids=ids, with_email=True) if with_email else source.users(only_ids=ids)
    return source.users_by_id(sorted(ids), with_email=True) if with_email else source.users_by_id(sorted(ids))
