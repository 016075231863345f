"""A discrete-time swarm simulator that drives the core scheduler and player model unchanged."""
