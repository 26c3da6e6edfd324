"""What goes into an image and how it is made: lockfiles, the wheelhouse, the Debian packages
and mirror, the logical images' resolution and offline recipes, BuildKit builds, and the
project's own image. What it may import: [tool.importlinter] in pyproject.toml."""
