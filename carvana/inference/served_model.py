"""The served model as MLflow logs and loads it, from this file (models from code): nothing is pickled.

`registry.log_model` passes this file's path as the python_model; MLflow runs it when the model loads, with the
`carvana` package shipped alongside on its path.
"""

import mlflow

from carvana.inference.serving import PhotoSegmenter

mlflow.models.set_model(PhotoSegmenter())
