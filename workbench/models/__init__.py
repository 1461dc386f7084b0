"""Built-in models for the reference use cases (Analytics Zoo's model zoo), in PyTorch.

Each model is a ``torch.nn.Module`` built from plain arguments; ``model.estimator(...)`` trains
it on the cluster with the loss and metrics that suit it (or pass it to
``wb.Estimator.from_torch``), and ``wb.Estimator.load(path)`` rebuilds it from its saved
config without running code from the directory.

=====================  ==========================================================
text                   :class:`TextClassifier` (CNN / LSTM / GRU encoder)
recommendation         :class:`NCF`, :class:`WideAndDeep`, :func:`recommend_for_user`,
                       :func:`recommend_for_item`, :func:`hit_ratio_at_k`, :func:`ndcg_at_k`
time series            :class:`LSTMForecaster`, :class:`Seq2SeqForecaster`, :class:`TCNForecaster`,
                       :class:`Seq2Seq`, :class:`AnomalyDetector`, :func:`detect_anomalies`
images                 :class:`ImageClassifier` (small CNN / MobileNet-style)
anomaly and generation :class:`Autoencoder`, :class:`VAE`, :func:`reconstruction_error`
=====================  ==========================================================

Importing this package defines every built-in class, which is what lets a saved config name it.
"""

from workbench.models.anomaly import AnomalyDetector, detect_anomalies
from workbench.models.autoencoder import VAE, Autoencoder, VAELoss, reconstruction_error
from workbench.models.forecasting import LSTMForecaster, Seq2Seq, Seq2SeqForecaster, TCNForecaster
from workbench.models.image import ImageClassifier
from workbench.models.ranking import hit_ratio_at_k, ndcg_at_k
from workbench.models.recommendation import NCF, WideAndDeep, recommend_for_item, recommend_for_user
from workbench.models.text import TextClassifier

__all__ = [
    "TextClassifier",
    "NCF", "WideAndDeep", "recommend_for_user", "recommend_for_item", "hit_ratio_at_k", "ndcg_at_k",
    "LSTMForecaster", "Seq2SeqForecaster", "TCNForecaster", "Seq2Seq", "AnomalyDetector", "detect_anomalies",
    "ImageClassifier",
    "Autoencoder", "VAE", "VAELoss", "reconstruction_error",
]
