"""The miniature world: procedural concepts with exact labels, the world judge, and the embedded mini SD."""
