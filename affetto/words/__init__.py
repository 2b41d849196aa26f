"""Words: describe a phrase, recognise a player's mood, and read a mood in words."""
