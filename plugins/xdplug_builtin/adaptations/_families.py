"""The model families the schedule adaptations run in."""

#: the transfer model, the closed-form item-item family, the factor family (whose problems offer the same
#: closed-form verbs: target(), source(), with_prior(weight), pooled(weight)) and the next-item sequence tower
FAMILIES = frozenset({"embedding", "ease", "factor", "sequence"})
#: the trained families (a schedule of phases, no closed form)
TRAINED = frozenset({"embedding", "sequence"})
