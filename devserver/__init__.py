"""A stand-in for TensorFlow ModelServer's gRPC API, running real SavedModels.

``python -m devserver --model_config_file=examples/models.config --port=8500`` serves
``tensorflow.serving.PredictionService`` and ``ModelService`` with ModelServer's flags,
version policies, labels and error texts, so the gateway can be developed and tested
without the real ``tensorflow_model_server`` binary. The gateway never imports this package.
"""
