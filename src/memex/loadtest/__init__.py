"""`memex loadtest`: load scenarios at a constant arrival rate against a running Memex, over its HTTP API.

The generator is open-loop: each request is sent at its scheduled time whether or not earlier ones have
finished, and its latency is measured from that scheduled time, so a server that falls behind shows the queue
in the latency figures instead of quietly receiving fewer requests (the "coordinated omission" of closed-loop
tools, whose simulated users wait for each answer before asking again).
"""
