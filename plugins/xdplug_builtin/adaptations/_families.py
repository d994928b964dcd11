"""The model families the schedule adaptations run in."""

#: the transfer model, the closed-form item-item family and the factor family (whose problems offer the
#: same closed-form verbs: target(), source(), with_prior(weight), pooled(weight))
FAMILIES = frozenset({"embedding", "ease", "factor"})
