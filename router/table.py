"""The address table: address -> the names of its subscribers. Owned by the Router actor."""

from __future__ import annotations


class AddressTable:
    """Exact-address subscriptions; lookups are one dict access on the hot path."""

    __slots__ = ("_by_address", "_by_subscriber")

    def __init__(self) -> None:
        self._by_address: dict[str, tuple[str, ...]] = {}
        self._by_subscriber: dict[str, set[str]] = {}

    def subscribers(self, address: str) -> tuple[str, ...]:
        return self._by_address.get(address, ())

    def add(self, address: str, subscriber: str) -> bool:
        current = self._by_address.get(address, ())
        if subscriber in current:
            return False
        self._by_address[address] = (*current, subscriber)
        self._by_subscriber.setdefault(subscriber, set()).add(address)
        return True

    def remove(self, address: str, subscriber: str) -> bool:
        current = self._by_address.get(address, ())
        if subscriber not in current:
            return False
        rest = tuple(s for s in current if s != subscriber)
        if rest:
            self._by_address[address] = rest
        else:
            del self._by_address[address]
        self._by_subscriber.get(subscriber, set()).discard(address)
        return True

    def clear_subscriber(self, subscriber: str) -> int:
        addresses = self._by_subscriber.pop(subscriber, set())
        for address in addresses:
            rest = tuple(s for s in self._by_address.get(address, ()) if s != subscriber)
            if rest:
                self._by_address[address] = rest
            else:
                self._by_address.pop(address, None)
        return len(addresses)

    def snapshot(self) -> dict[str, tuple[str, ...]]:
        return dict(self._by_address)

    def __len__(self) -> int:
        return len(self._by_address)
