"""Text output streamed chunk by chunk from the decoder, without building tables."""
