"""The orbit twin: pure, vectorized functions of time (where, sunlit, beneath, passes)."""
