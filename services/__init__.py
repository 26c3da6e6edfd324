"""Services under test. The harness never imports these."""
