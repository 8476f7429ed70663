"""Google contacts through the People API: authorisation, client, sync, scheduler."""

from appliance.sources.google.sync import GoogleSync, SyncResult, stored_labels

__all__ = ["GoogleSync", "SyncResult", "stored_labels"]
