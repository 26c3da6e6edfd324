"""The performance tier: the gate Locust runs when it quits (`gate`) and the run that
starts the stack, drives Locust and reports (`locust_run`); capacity runs step the users up
(`capacity_shape`, judged by `steps`) and gate the knee (`capacity_run`, `knee`)."""
