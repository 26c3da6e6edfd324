"""What goes into an image and how it is made: lockfiles, the wheelhouse, logical images
and their offline recipes, BuildKit builds, OCI tarballs, and copies of the checkout.
Imports `tierharness.config`, `tierharness.engine`, `tierharness.errors`, `tierharness.process`."""
