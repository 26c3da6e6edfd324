"""The supply chain: a loopback registry, publishing by digest, signing and attestations,
verification before run, an independent rebuild on a second engine."""
