"""Analysis: emotion, key estimation and the feature judge, bar attributes, music metrics, the voicing judge."""
