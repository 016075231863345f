"""Headless P2P HLS peer agents, the pure core they share with the simulator, and the simulator."""
