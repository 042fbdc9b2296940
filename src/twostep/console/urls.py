from django.urls import path
from django.views.generic import RedirectView

from twostep.console import views

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/users", permanent=False)),
    path("users", views.users_view),
    path("users/new", views.create_user_view),
    path("users/<str:username>", views.user_view),
    path("users/<str:username>/password", views.user_password_view),
    path("users/<str:username>/delete", views.user_delete_view),
    path("users/<str:username>/reset-2fa", views.user_reset_2fa_view),
    path("users/<str:username>/unlock", views.user_unlock_view),
    path("users/<str:username>/trusted-browsers", views.user_trusted_browsers_view),
    path("users/<str:username>/emails", views.user_emails_view),
    path("users/<str:username>/phones", views.user_phones_view),
    path("authentication", views.authentication_view),
    path("audit", views.audit_view),
]
