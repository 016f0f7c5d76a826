"""Local sandbox clusters: servers in a temporary directory (:mod:`.servers`), their pieces
(:mod:`.parts`), the initdb template cache (:mod:`.template`) and the setup plan (:mod:`.setup`)."""
