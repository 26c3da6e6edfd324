"""The supply chain: a loopback registry, publishing by digest, signing and attestations,
verification before run, and the image a stack runs (`stack_image`)."""
