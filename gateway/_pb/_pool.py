"""The descriptor pool that holds every gateway proto (generated; see protos/regenerate.py).

TensorFlow registers ``tensorflow.TensorProto`` and friends in protobuf's default
pool, and tritonclient and kserve register ``inference.*`` there; ours live here so
each can be imported in one process with the gateway, in either order.
"""

from google.protobuf import any_pb2, descriptor_pool, wrappers_pb2

POOL = descriptor_pool.DescriptorPool()
for _well_known in (any_pb2, wrappers_pb2):
    POOL.AddSerializedFile(_well_known.DESCRIPTOR.serialized_pb)
