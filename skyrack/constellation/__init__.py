"""Training one model across a constellation of satellites over inter-satellite links."""
