"""Transport-free request handling shared by every protocol front."""
