"""Commercial work on board: customers' jobs flown up the link, scheduled by power, heat,
radiation and contacts between training steps, their results sent down by priority."""
