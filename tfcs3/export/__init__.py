"""SavedModel export in TF Serving's layout, with raw-feature signatures and top-k indices."""

from tfcs3.export.latency import export_latency
from tfcs3.export.query import recommend_for_user
from tfcs3.export.requests import raw_requests
from tfcs3.export.saved_model import ServingLimits, ServingModule, export_model, next_version
from tfcs3.retrieval import INDEXES

__all__ = [
    "INDEXES",
    "ServingLimits",
    "ServingModule",
    "export_latency",
    "export_model",
    "next_version",
    "raw_requests",
    "recommend_for_user",
]
