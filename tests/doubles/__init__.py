"""Real HTTP servers on loopback that speak the LLM providers' protocols, scripted by the tests.

    double.push(reply("Hello there.", chunks=3, token_delay=0.05))   # the next chat request
    double.push(fail(429), times=2)                                  # then two rate limits
    double.set_default(hang())                                       # every request after that
    await double.wait_for(lambda d: d.disconnected == 1, what="the client to leave")

See `script.Behaviour` for what can be scripted and `answer` for the default answer.
"""
