"""A network test bed on one machine (root): peers behind NATs, a public segment, impaired links.

:mod:`peer_agent.netbed.bed` builds the namespaces, NATs and shaping; :mod:`.impair` is the
user-space TUN router that adds delay, jitter and loss (the kernel here has no netem);
:mod:`.probe` holds the UDP probes that check NAT behaviour. See docs/netbed.md.
"""
