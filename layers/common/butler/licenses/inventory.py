"""The inventory: every professional and analyzer allocation, joined to just the user records the policy reads.

Request budget (it does not grow with the number of allocations, and not per user):
- one ``GET .../professionalaccesstype/full`` and one ``GET .../analyzeraccesstype/full``;
- the owners of the allocations past their threshold (the only ones whose protection rules are read): up to
  ``USER_FILTER_MAX`` of them in one ``POST /user/table`` filtered by id, otherwise all users in
  ``/user/table`` pages of ``Butler.qrs.pageSize`` (20,000 by default: 100,000 users are five pages).

Allocations of a disabled license type are read too: the report holds one decision per allocation (``skip``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from butler.config import LICENSE_TYPES
from butler.qrs import QrsClient
from butler.qrs import filters as qf
from butler.qrs.models import Allocation, LicenseType, User, UserCondensed

USER_FILTER_MAX = 50  # ids in one filter: about 2.5 kB of query string, well within QRS's URL limit


def _user_key(directory: str, user_id: str) -> tuple[str, str]:
    return directory.casefold(), user_id.casefold()


@dataclass(frozen=True)
class Inventory:
    allocations: dict[LicenseType, list[Allocation]]
    users_by_id: dict[str, User] = field(default_factory=dict)
    users_by_name: dict[tuple[str, str], User] = field(default_factory=dict)

    @classmethod
    def join(cls, allocations: dict[LicenseType, list[Allocation]], users: Iterable[User]) -> Inventory:
        by_id: dict[str, User] = {}
        by_name: dict[tuple[str, str], User] = {}
        for user in users:
            by_id[user.id] = user
            by_name[_user_key(user.userDirectory, user.userId)] = user
        return cls(allocations, by_id, by_name)

    def user_of(self, allocation: Allocation) -> User | None:
        """The owner's record, by QRS user id (by directory and user id when the allocation lacks the id)."""
        owner = allocation.user
        if owner is None:
            return None
        if owner.id:
            return self.users_by_id.get(owner.id)
        return self.users_by_name.get(_user_key(owner.userDirectory, owner.userId))

    def pairs(self) -> Iterator[tuple[Allocation, User | None]]:
        for license_type in LICENSE_TYPES:
            for allocation in self.allocations.get(license_type, []):
                yield allocation, self.user_of(allocation)

    def count(self, license_type: LicenseType) -> int:
        return len(self.allocations.get(license_type, []))


def fetch_inventory(client: QrsClient, needs_user: Callable[[Allocation], bool]) -> Inventory:
    """All allocations of both types, and the users of those for which ``needs_user`` holds."""
    allocations = {license_type: client.allocations(license_type) for license_type in LICENSE_TYPES}
    owners = _owners(a for listed in allocations.values() for a in listed if needs_user(a))
    return Inventory.join(allocations, fetch_users(client, owners))


def _owners(allocations: Iterable[Allocation]) -> list[UserCondensed]:
    unique: dict[tuple[str, str], UserCondensed] = {}
    for allocation in allocations:
        if allocation.user is not None:
            unique.setdefault(_user_key(allocation.user.userDirectory, allocation.user.userId), allocation.user)
    return list(unique.values())


def fetch_users(client: QrsClient, owners: list[UserCondensed]) -> list[User]:
    """A few users in one filtered request; more than ``USER_FILTER_MAX`` in full pages (never one per user)."""
    if not owners:
        return []
    if len(owners) > USER_FILTER_MAX:
        ids = {owner.id for owner in owners if owner.id}
        return client.users(only_ids=ids if len(ids) == len(owners) else None)
    return client.users(qf.any_of(*(_match(owner) for owner in owners)))


def _match(owner: UserCondensed) -> str:
    try:
        return qf.eq("id", uuid.UUID(owner.id or ""))
    except ValueError:
        pass
    return qf.all_of(qf.eq("userDirectory", owner.userDirectory), qf.eq("userId", owner.userId))
