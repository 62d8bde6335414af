"""The emailed approval links: /approvals/<token>/ checks the token, /approvals/decide/ confirms and decides."""

from django.urls import path

from approvals import views

app_name = "approvals"

urlpatterns = [
    # Before the token pattern, which would match "decide" too.
    path("decide/", views.decide, name="decide"),
    path("<str:token>/", views.link, name="link"),
]
