"""The `psi` command line: node administration, matching, follow-ups and the officers' audit tools."""
