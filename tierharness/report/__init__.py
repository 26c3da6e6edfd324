"""`build/report/index.html`: the gates page for people, with the perf trend, provisioning,
reproducibility and links to the tiers' own reports; readable offline from its folder."""
