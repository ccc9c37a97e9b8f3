"""Routes of the HTTP API, mounted at /api/."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from conversations.api.errors import json_not_found
from conversations.api.views import (
    auth,
    clinic,
    contacts,
    conversations,
    messages,
    metrics,
    push,
    replies,
    stream,
)

urlpatterns = [
    path("auth/token/", auth.TokenView.as_view(), name="api-token"),
    path("auth/token/refresh/", auth.RefreshView.as_view(), name="api-token-refresh"),
    path("auth/logout/", auth.LogoutView.as_view(), name="api-logout"),
    path("clinics/", contacts.ClinicListView.as_view(), name="api-clinics"),
    path("conversations/", conversations.ConversationListView.as_view(), name="api-conversations"),
    path(
        "conversations/<int:conversation_id>/", conversations.ConversationDetailView.as_view(), name="api-conversation"
    ),
    path("conversations/<int:conversation_id>/messages/", messages.MessagesView.as_view(), name="api-messages"),
    path(
        "conversations/<int:conversation_id>/messages/<int:message_id>/resend/",
        messages.ResendView.as_view(),
        name="api-resend",
    ),
    path(
        "conversations/<int:conversation_id>/messages/<int:message_id>/reaction/",
        messages.ReactionView.as_view(),
        name="api-reaction",
    ),
    path("conversations/<int:conversation_id>/read/", messages.ReadView.as_view(), name="api-read"),
    path("conversations/<int:conversation_id>/unread/", messages.UnreadView.as_view(), name="api-unread"),
    path(
        "conversations/<int:conversation_id>/actions/",
        conversations.ConversationActionsView.as_view(),
        name="api-conversation-actions",
    ),
    path("conversations/<int:conversation_id>/notes/", conversations.NotesView.as_view(), name="api-notes"),
    path("templates/", messages.TemplatesView.as_view(), name="api-templates"),
    path("labels/", conversations.LabelsView.as_view(), name="api-labels"),
    path("search/", messages.SearchView.as_view(), name="api-search"),
    path("quick-replies/", replies.QuickRepliesView.as_view(), name="api-quick-replies"),
    path("quick-replies/<int:reply_id>/", replies.QuickReplyView.as_view(), name="api-quick-reply"),
    path("contacts/", contacts.ContactListView.as_view(), name="api-contacts"),
    path("contacts/<int:contact_id>/", contacts.ContactDetailView.as_view(), name="api-contact"),
    path("contacts/<int:contact_id>/export/", contacts.ContactExportView.as_view(), name="api-contact-export"),
    path("contacts/<int:contact_id>/erase/", contacts.ContactEraseView.as_view(), name="api-contact-erase"),
    path("contacts/<int:contact_id>/merge/", contacts.ContactMergeView.as_view(), name="api-contact-merge"),
    path("metrics/", metrics.MetricsView.as_view(), name="api-metrics"),
    path("clinic/hours/", clinic.ClinicHoursView.as_view(), name="api-clinic-hours"),
    path("clinic/open/", clinic.ClinicOpenView.as_view(), name="api-clinic-open"),
    path("reports/", clinic.ReportsView.as_view(), name="api-reports"),
    path("push/", push.PushView.as_view(), name="api-push"),
    path("push/subscription/", push.PushDeviceView.as_view(), name="api-push-subscription"),
    path("presence/", stream.PresenceView.as_view(), name="api-presence"),
    path("socket/stats/", stream.SocketStatsView.as_view(), name="api-socket-stats"),
    path("health/", stream.HealthView.as_view(), name="api-health"),
    path("health/details/", stream.HealthDetailsView.as_view(), name="api-health-details"),
    path("schema/", SpectacularAPIView.as_view(permission_classes=[]), name="api-schema"),
    # The split view serves its start-up script as a file, so the Content-Security-Policy needs no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema", permission_classes=[]), name="api-docs"),
    # Anything else under /api/ is a JSON 404, in DEBUG too.
    re_path(r"^.*$", json_not_found),
]
