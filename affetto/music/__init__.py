"""Music: notes, meters and the grid; MIDI files, multitrack files and piano rolls."""
