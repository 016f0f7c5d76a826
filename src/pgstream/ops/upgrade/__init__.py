"""Major version upgrade of a replicated cluster: the plan (:mod:`.plan`), its pre-checks
(:mod:`.checks`), the facts both share (:mod:`.facts`), the primary's side (:mod:`.primary`)
and the standbys' side (:mod:`.standby`)."""
