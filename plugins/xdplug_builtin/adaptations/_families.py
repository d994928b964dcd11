"""The model families the schedule adaptations run in."""

#: the transfer model and the closed-form item-item family
BOTH = frozenset({"embedding", "ease"})
