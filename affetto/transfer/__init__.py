"""Transfer: the player's phrase in another emotion (rule baseline and the CVAE family)."""
