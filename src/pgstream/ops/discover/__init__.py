"""Discovery of a running cluster: probe each server (:mod:`.probe`), match standbys to
walsenders (:mod:`.cluster`), build node handles (:mod:`.build`), what was found (:mod:`.found`),
and a cluster from its topology file (:mod:`.from_file`)."""
