"""Wire formats <-> tensors and protobuf messages: the JSON parsers, TF Serving's REST codecs, the dtype table."""
