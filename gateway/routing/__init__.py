"""What a request is for: URL grammar -> target, binding to a backend and model, auth policy."""
