"""End to end: real HTTP -> gateway -> real gRPC -> ModelServer stand-in -> TensorFlow."""
