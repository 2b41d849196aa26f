"""The ensemble at run time: four voices under a melody, and live accompaniment."""
