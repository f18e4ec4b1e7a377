"""Generated protobuf and gRPC stubs; see protos/regenerate.py."""
