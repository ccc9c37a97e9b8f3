"""URL routes of the HTTP side; WebSocket routes are in realtime.routing."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from conversations.admin import support_password_change
from conversations.web.app import manifest, notification_settings, offline, service_worker
from conversations.web.attachments import attachment
from conversations.web.clinics import choose_clinic
from conversations.web.form_posts import (
    change_conversation,
    correct_patient,
    mark_conversation_unread,
    new_label,
    send_reply,
)
from conversations.web.inbox import board, board_card, inbox, inbox_rows, timeline_part, waiting_hours
from conversations.web.login import AdminLoginForm, LoginView
from conversations.web.manager import business_hours_page, reports_page
from conversations.web.patients import merge_page
from conversations.web.replies import quick_replies
from conversations.web.search import search_page
from realtime.longpoll import events_longpoll
from taskmed.metrics import metrics

admin.site.site_header = "TaskMed Conversas — suporte"
admin.site.site_title = "TaskMed suporte"
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="inbox", query_string=True), name="home"),
    path("inbox/", inbox, name="inbox"),
    path("inbox/<int:conversation_id>/", inbox, name="conversation"),
    path("inbox/rows/", inbox_rows, name="inbox-rows"),
    path("inbox/hours/", waiting_hours, name="inbox-hours"),
    path("inbox/<int:conversation_id>/messages/", timeline_part, name="timeline-part"),
    path("inbox/<int:conversation_id>/send/", send_reply, name="send-reply"),
    path("inbox/<int:conversation_id>/change/", change_conversation, name="change-conversation"),
    path("inbox/<int:conversation_id>/patient/", correct_patient, name="correct-patient"),
    path("patients/<int:contact_id>/merge/", merge_page, name="merge-patients"),
    path("inbox/<int:conversation_id>/unread/", mark_conversation_unread, name="mark-unread"),
    path("quick-replies/", quick_replies, name="quick-replies"),
    path("labels/new/", new_label, name="new-label"),
    path("search/", search_page, name="search"),
    path("settings/hours/", business_hours_page, name="business-hours"),
    path("settings/notifications/", notification_settings, name="notification-settings"),
    path("manifest.webmanifest", manifest, name="manifest"),
    path("sw.js", service_worker, name="service-worker"),
    path("offline/", offline, name="offline"),
    path("reports/", reports_page, name="reports"),
    path("board/", board, name="board"),
    path("board/cards/<int:conversation_id>/", board_card, name="board-card"),
    path("media/attachments/<int:attachment_id>/", attachment, name="attachment"),
    path("clinics/", choose_clinic, name="choose_clinic"),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Support's own password, changed through the audited action (before the admin's URLs, which it replaces).
    path("admin/password_change/", admin.site.admin_view(support_password_change)),
    path("admin/", admin.site.urls),
    path("metrics", metrics, name="metrics"),
    path("api/events/", events_longpoll, name="api-events"),  # async: outside DRF, which is sync
    path("api/", include("conversations.api.urls")),
    path("webhooks/", include("conversations.webhooks.urls")),
]

handler404 = "conversations.api.errors.json_not_found"
handler500 = "conversations.api.errors.json_server_error"
