"""Proving an image reproducible: two clean, varied builds (`check`) and the explanation
of any difference down to the file (`diff`); the same build on a second engine (`independent`);
the build the checkout recorded, made with the engine's cache, against them (`recorded`)."""
